/* certificates: energy attribute certificates over settled net generation. See
 * docs/programs/certificates.md. */
#include <gtx_sol.h>

#include "error.h"
#include "instructions.h"

uint64_t entrypoint(const uint8_t *input) {
  SolAccountInfo accounts[CERT_MAX_ACCOUNTS];
  GtxInput in;
  gtx_deserialize(input, accounts, CERT_MAX_ACCOUNTS, &in);
  if (in.data_len < 1) {
    GTX_LOG("empty instruction data");
    return ERROR_INVALID_INSTRUCTION_DATA;
  }
  switch (in.data[0]) {
  case CERT_IX_INITIALIZE: /* upgrade authority sets governance, registry and validity */
    return process_initialize(&in);
  case CERT_IX_ISSUE: /* meter owner certifies newly settled generation (Pending) */
    return process_issue(&in);
  case CERT_IX_VALIDATE: /* governance: Pending -> Valid */
    return process_validate(&in);
  case CERT_IX_RETIRE: /* holder: Valid -> Retired */
    return process_retire(&in);
  case CERT_IX_REVOKE: /* governance: Pending/Valid -> Revoked(reason) */
    return process_revoke(&in);
  case CERT_IX_EXPIRE: /* anyone, after expires_at: Pending/Valid -> Expired */
    return process_expire(&in);
  case CERT_IX_TRANSFER: /* holder hands a Valid certificate to another holder */
    return process_transfer(&in);
  default:
    GTX_LOG("unknown instruction");
    return GTX_CUSTOM_ERROR(CERT_ERROR_UNKNOWN_INSTRUCTION);
  }
}
