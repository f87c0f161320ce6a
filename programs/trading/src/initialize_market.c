#include <gtx_sol.h>
#include <gtx/create_pda.h>
#include <gtx/token.h>
#include <gtx/upgradeable.h>

#include "events.h"
#include "instructions.h"
#include "state.h"

uint64_t process_initialize_market(const GtxInput *in) {
  GTX_TRY(expect_accounts(in, 7));
  const SolAccountInfo *authority = &in->accounts[0];
  SolAccountInfo *market = &in->accounts[1];
  const SolAccountInfo *grid_mint = &in->accounts[2];
  const SolAccountInfo *thbc_mint = &in->accounts[3];
  const SolAccountInfo *fee_account = &in->accounts[4];
  if (in->data_len != 4) {
    GTX_LOG("initialize_market: data must be [0, fee_bps u16, bump]");
    return ERROR_INVALID_INSTRUCTION_DATA;
  }
  uint16_t fee_bps = gtx_load_u16_le(in->data + 1);
  uint8_t bump = in->data[3];
  GTX_TRY(expect_signer(authority));
  GTX_TRY(expect_writable(authority));
  GTX_TRY(expect_writable(market));
  GTX_TRY(gtx_expect_upgrade_authority(&in->accounts[5], authority, in->program_id));
  GTX_TRY(expect_program(&in->accounts[6], &GTX_SYSTEM_PROGRAM_ID));
  if (fee_bps > FEE_BPS_MAX) {
    GTX_LOG("initialize_market: fee_bps above 10000");
    return GTX_CUSTOM_ERROR(TRADING_ERROR_FEE_TOO_HIGH);
  }

  GtxMint grid, thbc;
  GTX_TRY(gtx_mint_load(grid_mint, &grid));
  GTX_TRY(gtx_mint_load(thbc_mint, &thbc));
  if (gtx_pubkey_eq(grid_mint->key, thbc_mint->key)) {
    GTX_LOG("initialize_market: GRID and THBC must be different mints");
    return GTX_CUSTOM_ERROR(TRADING_ERROR_SAME_MINT);
  }
  if (grid.decimals != GRID_DECIMALS) {
    GTX_LOG_KEY("initialize_market: GRID mint must have 9 decimals:", grid_mint->key);
    return GTX_CUSTOM_ERROR(TRADING_ERROR_WRONG_DECIMALS);
  }
  GtxTokenAccount fee;
  GTX_TRY(gtx_token_account_load(fee_account, &fee));
  if (!gtx_pubkey_eq(fee.mint, thbc_mint->key)) {
    GTX_LOG_KEY("initialize_market: fee account is not a THBC account:", fee_account->key);
    return GTX_CUSTOM_ERROR(TRADING_ERROR_WRONG_MINT);
  }

  SolSignerSeed parts[2];
  SolSignerSeeds seeds;
  market_seeds(parts, &seeds);
  GTX_TRY(gtx_expect_canonical_pda(market, &seeds, bump, in->program_id,
                                   GTX_CUSTOM_ERROR(TRADING_ERROR_NON_CANONICAL_BUMP)));
  uint64_t lamports;
  GTX_TRY(gtx_rent_minimum_balance(MARKET_LEN, &lamports));
  seeds_with_bump(&seeds, parts, &bump);
  GtxCreateAccount create = {authority, market, lamports, MARKET_LEN, in->program_id, &seeds};
  GTX_TRY(gtx_create_pda(&create)); /* AccountAlreadyInitialized if the market exists */

  Market *m = (Market *)market->data;
  m->discriminator = TRADING_DISC_MARKET;
  m->version = TRADING_VERSION;
  m->bump = bump;
  m->grid_decimals = grid.decimals;
  m->thbc_decimals = thbc.decimals;
  m->fee_bps = fee_bps;
  gtx_memcpy(&m->authority, authority->key, GTX_PUBKEY_LEN);
  gtx_memcpy(&m->grid_mint, grid_mint->key, GTX_PUBKEY_LEN);
  gtx_memcpy(&m->thbc_mint, thbc_mint->key, GTX_PUBKEY_LEN);
  gtx_memcpy(&m->fee_account, fee_account->key, GTX_PUBKEY_LEN);
  MarketInitializedEvent e;
  gtx_event_header(&e.header, GTX_TAG_MarketInitialized, TRADING_EVENT_VERSION);
  gtx_memcpy(&e.market, market->key, GTX_PUBKEY_LEN);
  gtx_memcpy(&e.authority, authority->key, GTX_PUBKEY_LEN);
  gtx_memcpy(&e.grid_mint, grid_mint->key, GTX_PUBKEY_LEN);
  gtx_memcpy(&e.thbc_mint, thbc_mint->key, GTX_PUBKEY_LEN);
  gtx_memcpy(&e.fee_account, fee_account->key, GTX_PUBKEY_LEN);
  e.fee_bps = fee_bps;
  e.grid_decimals = grid.decimals;
  e.thbc_decimals = thbc.decimals;
  gtx_emit(&e, sizeof(e));
  return SUCCESS;
}
