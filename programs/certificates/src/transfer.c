#include <gtx_sol.h>

#include "events.h"
#include "instructions.h"
#include "state.h"

uint64_t process_transfer(const GtxInput *in) {
  GTX_TRY(expect_accounts(in, 2));
  if (in->data_len != 1 + GTX_PUBKEY_LEN) {
    GTX_LOG("transfer: data must be [6, new_holder[32]]");
    return ERROR_INVALID_INSTRUCTION_DATA;
  }
  Certificate *cert;
  int64_t now;
  GTX_TRY(cert_load_held_valid(in, &cert, &now));
  SolPubkey previous;
  gtx_memcpy(&previous, &cert->owner, GTX_PUBKEY_LEN);
  gtx_memcpy(&cert->owner, in->data + 1, GTX_PUBKEY_LEN);
  cert_emit_with_key(GTX_TAG_CertificateTransferred, in->accounts[1].key, cert, now, &previous);
  return SUCCESS;
}
