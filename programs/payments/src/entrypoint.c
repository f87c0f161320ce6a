/* payments: THBC issued against fiat deposits by the payment operator (each deposit reference once),
 * and redeemed (burned) by holders. See docs/programs/payments.md. */
#include <gtx_sol.h>

#include "error.h"
#include "instructions.h"

uint64_t entrypoint(const uint8_t *input) {
  SolAccountInfo accounts[PAYMENTS_MAX_ACCOUNTS];
  GtxInput in;
  gtx_deserialize(input, accounts, PAYMENTS_MAX_ACCOUNTS, &in);
  if (in.data_len < 1) {
    GTX_LOG("empty instruction data");
    return ERROR_INVALID_INSTRUCTION_DATA;
  }
  switch (in.data[0]) {
  case PAYMENTS_IX_INITIALIZE: /* upgrade authority pins THBC and names the payment operator */
    return process_initialize(&in);
  case PAYMENTS_IX_ISSUE: /* operator mints THBC for a deposit reference, once */
    return process_issue(&in);
  case PAYMENTS_IX_REDEEM: /* holder burns THBC for a payout */
    return process_redeem(&in);
  case PAYMENTS_IX_SET_OPERATOR: /* config authority replaces the operator */
    return process_set_operator(&in);
  default:
    GTX_LOG("unknown instruction");
    return GTX_CUSTOM_ERROR(PAYMENTS_ERROR_UNKNOWN_INSTRUCTION);
  }
}
