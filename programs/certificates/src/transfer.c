#include <gtx_sol.h>

#include "instructions.h"
#include "state.h"

uint64_t process_transfer(const GtxInput *in) {
  GTX_TRY(expect_accounts(in, 2));
  const SolAccountInfo *holder = &in->accounts[0];
  const SolAccountInfo *certificate = &in->accounts[1];
  if (in->data_len != 1 + GTX_PUBKEY_LEN) {
    GTX_LOG("transfer: data must be [6, new_holder[32]]");
    return ERROR_INVALID_INSTRUCTION_DATA;
  }
  GTX_TRY(expect_signer(holder));
  GTX_TRY(expect_writable(certificate));
  Certificate *cert;
  GTX_TRY(cert_certificate_load(certificate, in->program_id, &cert));
  if (!gtx_pubkey_eq(&cert->owner, holder->key)) {
    GTX_LOG_KEY("transfer: signer does not hold the certificate:", holder->key);
    return GTX_CUSTOM_ERROR(CERT_ERROR_NOT_CERTIFICATE_OWNER);
  }
  if (cert->status != CERT_STATUS_VALID) {
    GTX_LOG_KEY("transfer: certificate is not valid:", certificate->key);
    return GTX_CUSTOM_ERROR(CERT_ERROR_INVALID_STATE);
  }
  int64_t now;
  GTX_TRY(cert_now(&now));
  if (now >= cert->expires_at) {
    GTX_LOG_KEY("transfer: certificate has expired:", certificate->key);
    return GTX_CUSTOM_ERROR(CERT_ERROR_CERTIFICATE_EXPIRED);
  }
  gtx_memcpy(&cert->owner, in->data + 1, GTX_PUBKEY_LEN);
  CERT_EVENT("transfer", cert);
  return SUCCESS;
}
