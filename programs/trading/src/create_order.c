#include <gtx_sol.h>
#include <gtx/create_pda.h>
#include <gtx/token.h>

#include "escrow.h"
#include "events.h"
#include "instructions.h"
#include "pricing.h"
#include "state.h"

uint64_t process_create_order(const GtxInput *in) {
  GTX_TRY(expect_accounts(in, 8));
  const SolAccountInfo *seller = &in->accounts[0];
  const SolAccountInfo *market_account = &in->accounts[1];
  SolAccountInfo *order_account = &in->accounts[2];
  SolAccountInfo *vault = &in->accounts[3];
  const SolAccountInfo *seller_grid = &in->accounts[4];
  const SolAccountInfo *grid_mint = &in->accounts[5];
  if (in->data_len != 37) {
    GTX_LOG("create_order: data must be [1, order_id, amount, price, expires_at, order bump, vault bump, "
            "max_fee_bps u16]");
    return ERROR_INVALID_INSTRUCTION_DATA;
  }
  const uint8_t *order_id_le = in->data + 1;
  uint64_t amount = gtx_load_u64_le(in->data + 9);
  uint64_t price = gtx_load_u64_le(in->data + 17);
  int64_t expires_at = (int64_t)gtx_load_u64_le(in->data + 25);
  uint8_t order_bump = in->data[33];
  uint8_t vault_bump = in->data[34];
  uint16_t max_fee_bps = gtx_load_u16_le(in->data + 35);

  GTX_TRY(expect_signer(seller));
  GTX_TRY(expect_writable(seller));
  GTX_TRY(expect_writable(order_account));
  GTX_TRY(expect_writable(vault));
  GTX_TRY(expect_writable(seller_grid));
  GTX_TRY(expect_program(&in->accounts[6], &GTX_TOKEN_PROGRAM_ID));
  GTX_TRY(expect_program(&in->accounts[7], &GTX_SYSTEM_PROGRAM_ID));
  if (amount == 0) {
    GTX_LOG("create_order: amount is 0");
    return GTX_CUSTOM_ERROR(TRADING_ERROR_ZERO_AMOUNT);
  }
  if (price == 0) {
    GTX_LOG("create_order: price is 0");
    return GTX_CUSTOM_ERROR(TRADING_ERROR_ZERO_PRICE);
  }

  Market *m;
  GTX_TRY(market_load(market_account, in->program_id, &m));
  if (m->fee_bps > max_fee_bps) {
    /* The seller signed for at most max_fee_bps: a fee raised after signing does not apply to them. */
    GTX_LOG("create_order: the market's fee is above the seller's max_fee_bps");
    sol_log_64_(m->fee_bps, max_fee_bps, 0, 0, 0);
    return GTX_CUSTOM_ERROR(TRADING_ERROR_FEE_ABOVE_LIMIT);
  }
  if (!gtx_pubkey_eq(grid_mint->key, &m->grid_mint)) {
    GTX_LOG_KEY("create_order: not the market's GRID mint:", grid_mint->key);
    return GTX_CUSTOM_ERROR(TRADING_ERROR_WRONG_MINT);
  }
  GtxTokenAccount source;
  GTX_TRY(gtx_token_account_load(seller_grid, &source));
  if (!gtx_pubkey_eq(source.mint, &m->grid_mint)) {
    GTX_LOG_KEY("create_order: seller's account is not a GRID account:", seller_grid->key);
    return GTX_CUSTOM_ERROR(TRADING_ERROR_WRONG_MINT);
  }
  if (!gtx_pubkey_eq(source.owner, seller->key)) {
    GTX_LOG_KEY("create_order: GRID account is not the seller's:", seller_grid->key);
    return GTX_CUSTOM_ERROR(TRADING_ERROR_WRONG_TOKEN_OWNER);
  }
  if (source.amount < amount) {
    GTX_LOG("create_order: seller holds less GRID than offered");
    sol_log_64_(source.amount, amount, 0, 0, 0);
    return GTX_CUSTOM_ERROR(TRADING_ERROR_INSUFFICIENT_BALANCE);
  }
  int64_t now;
  GTX_TRY(now_unix(&now));
  if (expires_at <= now) {
    GTX_LOG("create_order: expires_at is not in the future");
    return GTX_CUSTOM_ERROR(TRADING_ERROR_EXPIRY_IN_PAST);
  }
  /* Refuse now an order whose full fill would not be payable in u64; every partial fill then fits. */
  uint64_t full_cost;
  GTX_TRY(trade_cost(amount, price, &full_cost));

  SolSignerSeed oparts[4];
  SolSignerSeeds oseeds;
  order_seeds(seller->key, order_id_le, oparts, &oseeds);
  GTX_TRY(gtx_expect_canonical_pda(order_account, &oseeds, order_bump, in->program_id,
                                   GTX_CUSTOM_ERROR(TRADING_ERROR_NON_CANONICAL_BUMP)));
  SolSignerSeed vparts[3];
  SolSignerSeeds vseeds;
  vault_seeds(order_account->key, vparts, &vseeds);
  GTX_TRY(gtx_expect_canonical_pda(vault, &vseeds, vault_bump, in->program_id,
                                   GTX_CUSTOM_ERROR(TRADING_ERROR_NON_CANONICAL_BUMP)));

  uint64_t lamports;
  GTX_TRY(gtx_rent_minimum_balance(ORDER_LEN, &lamports));
  seeds_with_bump(&oseeds, oparts, &order_bump);
  GtxCreateAccount create_order = {seller, order_account, lamports, ORDER_LEN, in->program_id, &oseeds};
  /* gtx_create_pda: lamports sent to the address beforehand cannot block the order; an order id in
   * use (its account owned by this program) gives AccountAlreadyInitialized. */
  GTX_TRY(gtx_create_pda(&create_order));
  GTX_TRY(gtx_rent_minimum_balance(GTX_TOKEN_ACCOUNT_LEN, &lamports));
  seeds_with_bump(&vseeds, vparts, &vault_bump);
  GtxCreateAccount create_vault = {seller, vault, lamports, GTX_TOKEN_ACCOUNT_LEN, &GTX_TOKEN_PROGRAM_ID,
                                   &vseeds};
  GTX_TRY(gtx_create_pda(&create_vault));
  GTX_TRY(gtx_token_initialize_account3(vault, grid_mint, order_account->key));
  GtxTokenTransfer escrow = {seller_grid, vault, seller, amount, (const SolSignerSeeds *)0};
  GTX_TRY(gtx_token_transfer(&escrow));

  Order *o = (Order *)order_account->data;
  o->discriminator = TRADING_DISC_ORDER;
  o->version = TRADING_VERSION;
  o->bump = order_bump;
  o->vault_bump = vault_bump;
  o->state = ORDER_STATE_ACTIVE;
  gtx_memcpy(&o->market, market_account->key, GTX_PUBKEY_LEN);
  gtx_memcpy(&o->seller, seller->key, GTX_PUBKEY_LEN);
  gtx_memcpy(&o->vault, vault->key, GTX_PUBKEY_LEN);
  o->order_id = gtx_load_u64_le(order_id_le);
  o->amount = amount;
  o->remaining = amount;
  o->price = price;
  o->expires_at = expires_at;
  o->created_at = now;
  o->proceeds = 0;
  o->fee_bps = m->fee_bps;
  OrderCreatedEvent e;
  gtx_event_header(&e.header, GTX_TAG_OrderCreated, TRADING_EVENT_VERSION);
  gtx_memcpy(&e.order, order_account->key, GTX_PUBKEY_LEN);
  gtx_memcpy(&e.market, market_account->key, GTX_PUBKEY_LEN);
  gtx_memcpy(&e.seller, seller->key, GTX_PUBKEY_LEN);
  gtx_memcpy(&e.vault, vault->key, GTX_PUBKEY_LEN);
  gtx_memcpy(&e.seller_grid, seller_grid->key, GTX_PUBKEY_LEN);
  e.order_id = o->order_id;
  e.amount = amount;
  e.price = price;
  e.expires_at = expires_at;
  e.created_at = now;
  e.fee_bps = o->fee_bps;
  e.max_fee_bps = max_fee_bps;
  gtx_emit(&e, sizeof(e));
  return SUCCESS;
}
