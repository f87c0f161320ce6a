/* registry: users (prosumer / consumer) and meters (owner, id, Ed25519 key, status, last accepted
 * reading, settled net generation). See docs/programs/registry.md. */
#include <gtx_sol.h>

#include "error.h"
#include "instructions.h"

uint64_t entrypoint(const uint8_t *input) {
  SolAccountInfo accounts[REGISTRY_MAX_ACCOUNTS];
  GtxInput in;
  gtx_deserialize(input, accounts, REGISTRY_MAX_ACCOUNTS, &in);
  if (in.data_len < 1) {
    GTX_LOG("empty instruction data");
    return ERROR_INVALID_INSTRUCTION_DATA;
  }
  switch (in.data[0]) {
  case REGISTRY_IX_INITIALIZE: /* upgrade authority creates the config (authority, settlement authority) */
    return process_initialize(&in);
  case REGISTRY_IX_REGISTER_USER: /* a wallet registers itself as prosumer or consumer */
    return process_register_user(&in);
  case REGISTRY_IX_REGISTER_METER: /* a registered user adds a meter (Pending until approved) */
    return process_register_meter(&in);
  case REGISTRY_IX_SET_METER_STATUS: /* config authority approves, suspends or decommissions a meter */
    return process_set_meter_status(&in);
  case REGISTRY_IX_RECORD_SETTLEMENT: /* energy token (by CPI) stores an accepted reading and mark */
    return process_record_settlement(&in);
  case REGISTRY_IX_SET_METER_KEY: /* config authority rotates a meter's gateway key */
    return process_set_meter_key(&in);
  case REGISTRY_IX_REASSIGN_METER: /* config authority hands a never-settled meter id to its rightful owner */
    return process_reassign_meter(&in);
  default:
    GTX_LOG("unknown instruction");
    return GTX_CUSTOM_ERROR(REGISTRY_ERROR_UNKNOWN_INSTRUCTION);
  }
}
