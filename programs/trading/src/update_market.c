#include <gtx_sol.h>
#include <gtx/token.h>

#include "events.h"
#include "instructions.h"
#include "state.h"

uint64_t process_update_market(const GtxInput *in) {
  GTX_TRY(expect_accounts(in, 3));
  const SolAccountInfo *authority = &in->accounts[0];
  const SolAccountInfo *market = &in->accounts[1];
  const SolAccountInfo *fee_account = &in->accounts[2];
  if (in->data_len != 3) {
    GTX_LOG("update_market: data must be [6, fee_bps u16]");
    return ERROR_INVALID_INSTRUCTION_DATA;
  }
  uint16_t fee_bps = gtx_load_u16_le(in->data + 1);
  GTX_TRY(expect_signer(authority));
  GTX_TRY(expect_writable(market));
  Market *m;
  GTX_TRY(market_load(market, in->program_id, &m));
  if (!gtx_pubkey_eq(authority->key, &m->authority)) {
    GTX_LOG_KEY("update_market: not the market authority:", authority->key);
    return GTX_CUSTOM_ERROR(TRADING_ERROR_NOT_MARKET_AUTHORITY);
  }
  if (fee_bps > FEE_BPS_MAX) {
    GTX_LOG("update_market: fee_bps above 10000");
    return GTX_CUSTOM_ERROR(TRADING_ERROR_FEE_TOO_HIGH);
  }
  GtxTokenAccount fee;
  GTX_TRY(gtx_token_account_load(fee_account, &fee));
  if (!gtx_pubkey_eq(fee.mint, &m->thbc_mint)) {
    GTX_LOG_KEY("update_market: fee account is not a THBC account:", fee_account->key);
    return GTX_CUSTOM_ERROR(TRADING_ERROR_WRONG_MINT);
  }
  MarketUpdatedEvent e;
  gtx_event_header(&e.header, GTX_TAG_MarketUpdated, TRADING_EVENT_VERSION);
  gtx_memcpy(&e.market, market->key, GTX_PUBKEY_LEN);
  gtx_memcpy(&e.authority, authority->key, GTX_PUBKEY_LEN);
  gtx_memcpy(&e.previous_fee_account, &m->fee_account, GTX_PUBKEY_LEN);
  gtx_memcpy(&e.fee_account, fee_account->key, GTX_PUBKEY_LEN);
  e.previous_fee_bps = m->fee_bps;
  e.fee_bps = fee_bps;
  m->fee_bps = fee_bps;
  gtx_memcpy(&m->fee_account, fee_account->key, GTX_PUBKEY_LEN);
  gtx_emit(&e, sizeof(e));
  return SUCCESS;
}
