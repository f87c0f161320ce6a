#include <gtx_sol.h>

#include "events.h"
#include "instructions.h"
#include "state.h"

uint64_t process_validate(const GtxInput *in) {
  GTX_TRY(expect_accounts(in, 3));
  const SolAccountInfo *certificate = &in->accounts[2];
  if (in->data_len != 1) {
    GTX_LOG("validate: data must be [2]");
    return ERROR_INVALID_INSTRUCTION_DATA;
  }
  GTX_TRY(cert_expect_governance(&in->accounts[0], &in->accounts[1], in->program_id));
  GTX_TRY(expect_writable(certificate));
  Certificate *cert;
  GTX_TRY(cert_certificate_load(certificate, in->program_id, &cert));
  if (cert->status != CERT_STATUS_PENDING) {
    GTX_LOG_KEY("validate: certificate is not pending:", certificate->key);
    return GTX_CUSTOM_ERROR(CERT_ERROR_INVALID_STATE);
  }
  int64_t now;
  GTX_TRY(cert_now(&now));
  if (now >= cert->expires_at) {
    GTX_LOG_KEY("validate: certificate has expired:", certificate->key);
    return GTX_CUSTOM_ERROR(CERT_ERROR_CERTIFICATE_EXPIRED);
  }
  cert->status = CERT_STATUS_VALID;
  cert->validated_at = now;
  cert_emit_with_key(GTX_TAG_CertificateValidated, certificate->key, cert, now, in->accounts[0].key);
  return SUCCESS;
}
