/* trading: peer-to-peer GRID (energy) for THBC (baht stablecoin) sell orders with per-order escrow. */
#include <gtx_sol.h>

#include "error.h"
#include "instructions.h"

uint64_t entrypoint(const uint8_t *input) {
  SolAccountInfo accounts[TRADING_MAX_ACCOUNTS];
  GtxInput in;
  gtx_deserialize(input, accounts, TRADING_MAX_ACCOUNTS, &in);
  if (in.data_len < 1) {
    GTX_LOG("empty instruction data");
    return ERROR_INVALID_INSTRUCTION_DATA;
  }
  switch (in.data[0]) {
  case TRADING_IX_INITIALIZE_MARKET: /* create the market PDA: mints, fee account, fee bps */
    return process_initialize_market(&in);
  case TRADING_IX_CREATE_ORDER: /* sell order PDA + escrow vault; seller's GRID into escrow */
    return process_create_order(&in);
  case TRADING_IX_BUY: /* GRID escrow -> buyer, THBC buyer -> seller and fee account */
    return process_buy(&in);
  case TRADING_IX_CANCEL_ORDER: /* seller only: unsold escrow back, vault closed */
    return process_cancel_order(&in);
  case TRADING_IX_EXPIRE_ORDER: /* anyone after expiry: unsold escrow back to the seller */
    return process_expire_order(&in);
  case TRADING_IX_CLOSE_ORDER: /* seller only: reclaim a finished order's rent */
    return process_close_order(&in);
  case TRADING_IX_UPDATE_MARKET: /* market authority only: new fee and fee account */
    return process_update_market(&in);
  default:
    GTX_LOG("unknown instruction");
    return GTX_CUSTOM_ERROR(TRADING_ERROR_UNKNOWN_INSTRUCTION);
  }
}
