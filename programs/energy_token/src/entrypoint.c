/* energy_token: trustless GRID minting from signed meter readings. See docs/programs/energy-token.md. */
#include <gtx_sol.h>

#include "error.h"
#include "instructions.h"

uint64_t entrypoint(const uint8_t *input) {
  SolAccountInfo accounts[ENERGY_MAX_ACCOUNTS];
  GtxInput in;
  gtx_deserialize(input, accounts, ENERGY_MAX_ACCOUNTS, &in);
  if (in.data_len < 1) {
    GTX_LOG("empty instruction data");
    return ERROR_INVALID_INSTRUCTION_DATA;
  }
  switch (in.data[0]) {
  case ENERGY_IX_INITIALIZE: /* upgrade authority pins the registry program and the GRID mint */
    return process_initialize(&in);
  case ENERGY_IX_SETTLE_AND_MINT: /* verify a signed reading, record it in the registry, mint GRID */
    return process_settle_and_mint(&in);
  case ENERGY_IX_CONSUME: /* the holder burns GRID it consumed */
    return process_consume(&in);
  default:
    GTX_LOG("unknown instruction");
    return GTX_CUSTOM_ERROR(ENERGY_ERROR_UNKNOWN_INSTRUCTION);
  }
}
