#include <gtx_sol.h>

#include "events.h"
#include "instructions.h"
#include "state.h"

uint64_t process_revoke(const GtxInput *in) {
  GTX_TRY(expect_accounts(in, 3));
  const SolAccountInfo *certificate = &in->accounts[2];
  if (in->data_len != 3) {
    GTX_LOG("revoke: data must be [4, reason u16]");
    return ERROR_INVALID_INSTRUCTION_DATA;
  }
  uint16_t reason = gtx_load_u16_le(in->data + 1);
  GTX_TRY(cert_expect_governance(&in->accounts[0], &in->accounts[1], in->program_id));
  GTX_TRY(expect_writable(certificate));
  Certificate *cert;
  GTX_TRY(cert_certificate_load(certificate, in->program_id, &cert));
  if (reason == 0) {
    GTX_LOG("revoke: reason code must be non-zero");
    return GTX_CUSTOM_ERROR(CERT_ERROR_INVALID_REASON);
  }
  if (cert->status != CERT_STATUS_PENDING && cert->status != CERT_STATUS_VALID) {
    GTX_LOG_KEY("revoke: certificate is neither pending nor valid:", certificate->key);
    return GTX_CUSTOM_ERROR(CERT_ERROR_INVALID_STATE);
  }
  int64_t now;
  GTX_TRY(cert_now(&now));
  cert->status = CERT_STATUS_REVOKED;
  cert->revoke_reason = reason;
  cert->closed_at = now;
  CertificateRevokedEvent e;
  gtx_event_header(&e.header, GTX_TAG_CertificateRevoked, CERT_EVENT_VERSION);
  cert_event_body(&e.body, certificate->key, cert, now);
  e.reason = reason;
  gtx_memcpy(&e.governance, in->accounts[0].key, GTX_PUBKEY_LEN);
  gtx_emit(&e, sizeof(e));
  return SUCCESS;
}
