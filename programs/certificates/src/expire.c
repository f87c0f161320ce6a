#include <gtx_sol.h>

#include "events.h"
#include "instructions.h"
#include "state.h"

uint64_t process_expire(const GtxInput *in) {
  GTX_TRY(expect_accounts(in, 1));
  const SolAccountInfo *certificate = &in->accounts[0];
  if (in->data_len != 1) {
    GTX_LOG("expire: data must be [5]");
    return ERROR_INVALID_INSTRUCTION_DATA;
  }
  GTX_TRY(expect_writable(certificate));
  Certificate *cert;
  GTX_TRY(cert_certificate_load(certificate, in->program_id, &cert));
  if (cert->status != CERT_STATUS_PENDING && cert->status != CERT_STATUS_VALID) {
    GTX_LOG_KEY("expire: certificate is neither pending nor valid:", certificate->key);
    return GTX_CUSTOM_ERROR(CERT_ERROR_INVALID_STATE);
  }
  int64_t now;
  GTX_TRY(cert_now(&now));
  if (now < cert->expires_at) {
    GTX_LOG_KEY("expire: certificate is still within its validity:", certificate->key);
    return GTX_CUSTOM_ERROR(CERT_ERROR_NOT_YET_EXPIRED);
  }
  cert->status = CERT_STATUS_EXPIRED;
  cert->closed_at = now;
  cert_emit_plain(GTX_TAG_CertificateExpired, certificate->key, cert, now);
  return SUCCESS;
}
