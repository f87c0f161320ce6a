#include <gtx_sol.h>

#include "events.h"
#include "instructions.h"
#include "state.h"

uint64_t process_retire(const GtxInput *in) {
  GTX_TRY(expect_accounts(in, 2));
  if (in->data_len != 1) {
    GTX_LOG("retire: data must be [3]");
    return ERROR_INVALID_INSTRUCTION_DATA;
  }
  Certificate *cert;
  int64_t now;
  GTX_TRY(cert_load_held_valid(in, &cert, &now));
  cert->status = CERT_STATUS_RETIRED;
  cert->closed_at = now;
  cert_emit_plain(GTX_TAG_CertificateRetired, in->accounts[1].key, cert, now);
  return SUCCESS;
}
