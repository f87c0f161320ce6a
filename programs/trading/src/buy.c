#include <gtx_sol.h>
#include <gtx/token.h>

#include "escrow.h"
#include "events.h"
#include "instructions.h"
#include "pricing.h"
#include "state.h"

/* A THBC token account of the market that `owner` holds. */
static uint64_t expect_thbc_account_of(const SolAccountInfo *a, const Market *m, const SolPubkey *owner,
                                       GtxTokenAccount *out) {
  GTX_TRY(expect_writable(a));
  GTX_TRY(gtx_token_account_load(a, out));
  if (!gtx_pubkey_eq(out->mint, &m->thbc_mint)) {
    GTX_LOG_KEY("buy: not a THBC account of this market:", a->key);
    return GTX_CUSTOM_ERROR(TRADING_ERROR_WRONG_MINT);
  }
  if (!gtx_pubkey_eq(out->owner, owner)) {
    GTX_LOG_KEY("buy: THBC account has the wrong holder:", a->key);
    return GTX_CUSTOM_ERROR(TRADING_ERROR_WRONG_TOKEN_OWNER);
  }
  return SUCCESS;
}

/* OrderFilled (the order after the fill) and TradeExecuted (the trade). */
typedef struct {
  const SolAccountInfo *order_account;
  const SolAccountInfo *buyer;
  const SolAccountInfo *fee_account;
  const GtxTokenAccount *grid_to;
  const Order *o; /* after the fill */
  uint64_t amount, delivered, cost, fee;
  int64_t now;
} Fill;

static void emit_fill(const Fill *f) {
  OrderFilledEvent filled;
  gtx_event_header(&filled.header, GTX_TAG_OrderFilled, TRADING_EVENT_VERSION);
  gtx_memcpy(&filled.order, f->order_account->key, GTX_PUBKEY_LEN);
  gtx_memcpy(&filled.seller, &f->o->seller, GTX_PUBKEY_LEN);
  gtx_memcpy(&filled.buyer, f->buyer->key, GTX_PUBKEY_LEN);
  filled.amount = f->amount;
  filled.cost = f->cost;
  filled.fee = f->fee;
  filled.remaining = f->o->remaining;
  filled.proceeds = f->o->proceeds;
  filled.state = f->o->state;
  gtx_emit(&filled, sizeof(filled));
  TradeExecutedEvent trade;
  gtx_event_header(&trade.header, GTX_TAG_TradeExecuted, TRADING_EVENT_VERSION);
  gtx_memcpy(&trade.order, f->order_account->key, GTX_PUBKEY_LEN);
  gtx_memcpy(&trade.seller, &f->o->seller, GTX_PUBKEY_LEN);
  gtx_memcpy(&trade.buyer, f->buyer->key, GTX_PUBKEY_LEN);
  gtx_memcpy(&trade.grid_recipient, f->grid_to->owner, GTX_PUBKEY_LEN);
  gtx_memcpy(&trade.fee_account, f->fee_account->key, GTX_PUBKEY_LEN);
  trade.amount = f->amount;
  trade.grid_delivered = f->delivered;
  trade.price = f->o->price;
  trade.cost = f->cost;
  trade.fee = f->fee;
  trade.timestamp = f->now;
  gtx_emit(&trade, sizeof(trade));
}

uint64_t process_buy(const GtxInput *in) {
  GTX_TRY(expect_accounts(in, 10));
  const SolAccountInfo *buyer = &in->accounts[0];
  const SolAccountInfo *market_account = &in->accounts[1];
  const SolAccountInfo *order_account = &in->accounts[2];
  const SolAccountInfo *vault = &in->accounts[3];
  const SolAccountInfo *buyer_grid = &in->accounts[4];
  const SolAccountInfo *buyer_thbc = &in->accounts[5];
  const SolAccountInfo *seller_thbc = &in->accounts[6];
  const SolAccountInfo *fee_account = &in->accounts[7];
  const SolAccountInfo *seller = &in->accounts[8];
  if (in->data_len != 9) {
    GTX_LOG("buy: data must be [2, amount u64]");
    return ERROR_INVALID_INSTRUCTION_DATA;
  }
  uint64_t amount = gtx_load_u64_le(in->data + 1);
  GTX_TRY(expect_signer(buyer));
  GTX_TRY(expect_program(&in->accounts[9], &GTX_TOKEN_PROGRAM_ID));

  Order *o;
  GTX_TRY(order_load(order_account, in->program_id, &o));
  GTX_TRY(expect_writable(order_account));
  Market *m;
  GTX_TRY(market_load(market_account, in->program_id, &m));
  if (!gtx_pubkey_eq(market_account->key, &o->market)) {
    GTX_LOG_KEY("buy: market is not the order's market:", market_account->key);
    return GTX_CUSTOM_ERROR(TRADING_ERROR_WRONG_MARKET);
  }

  if (!order_is_open(o)) {
    GTX_LOG_KEY("buy: order is not active:", order_account->key);
    return GTX_CUSTOM_ERROR(TRADING_ERROR_ORDER_NOT_ACTIVE);
  }
  int64_t now;
  GTX_TRY(now_unix(&now));
  if (now >= o->expires_at) {
    GTX_LOG_KEY("buy: order has expired:", order_account->key);
    return GTX_CUSTOM_ERROR(TRADING_ERROR_ORDER_EXPIRED);
  }
  if (gtx_pubkey_eq(buyer->key, &o->seller)) {
    GTX_LOG("buy: the seller cannot buy from their own order");
    return GTX_CUSTOM_ERROR(TRADING_ERROR_SELF_TRADE);
  }
  if (amount == 0) {
    GTX_LOG("buy: amount is 0");
    return GTX_CUSTOM_ERROR(TRADING_ERROR_ZERO_AMOUNT);
  }
  if (amount > o->remaining) {
    GTX_LOG("buy: amount exceeds what the order has left");
    sol_log_64_(amount, o->remaining, 0, 0, 0);
    return GTX_CUSTOM_ERROR(TRADING_ERROR_AMOUNT_EXCEEDS_REMAINING);
  }

  GtxTokenAccount escrow, grid_to, payer, payee;
  GTX_TRY(vault_check(vault, order_account, o, &escrow));
  GTX_TRY(expect_writable(buyer_grid));
  if (gtx_pubkey_eq(buyer_grid->key, vault->key)) {
    /* Delivering into the escrow itself would let the vault hold more than `remaining`. */
    GTX_LOG("buy: the GRID destination is the order's escrow vault");
    return GTX_CUSTOM_ERROR(TRADING_ERROR_WRONG_TOKEN_OWNER);
  }
  GTX_TRY(gtx_token_account_load(buyer_grid, &grid_to));
  if (!gtx_pubkey_eq(grid_to.mint, &m->grid_mint)) {
    GTX_LOG_KEY("buy: not a GRID account of this market:", buyer_grid->key);
    return GTX_CUSTOM_ERROR(TRADING_ERROR_WRONG_MINT);
  }
  GTX_TRY(expect_thbc_account_of(buyer_thbc, m, buyer->key, &payer));
  GTX_TRY(expect_thbc_account_of(seller_thbc, m, &o->seller, &payee));
  if (!gtx_pubkey_eq(fee_account->key, &m->fee_account)) {
    GTX_LOG_KEY("buy: not the market's fee account:", fee_account->key);
    return GTX_CUSTOM_ERROR(TRADING_ERROR_WRONG_FEE_ACCOUNT);
  }
  GTX_TRY(expect_writable(fee_account));
  if (!gtx_pubkey_eq(seller->key, &o->seller)) {
    GTX_LOG_KEY("buy: not the order's seller:", seller->key);
    return GTX_CUSTOM_ERROR(TRADING_ERROR_WRONG_SELLER);
  }
  GTX_TRY(expect_writable(seller));

  uint64_t cost, proceeds_total;
  GTX_TRY(trade_cost(amount, o->price, &cost));
  /* The order's own fee, fixed when it was created: a later UpdateMarket does not reach it. */
  uint64_t fee = trade_fee(cost, o->fee_bps);
  uint64_t to_seller = cost - fee; /* fee <= cost since fee_bps <= 10_000 */
  if (payer.amount < cost) {
    GTX_LOG("buy: buyer holds less THBC than the cost");
    sol_log_64_(payer.amount, cost, 0, 0, 0);
    return GTX_CUSTOM_ERROR(TRADING_ERROR_INSUFFICIENT_BALANCE);
  }
  if (gtx_add_u64(o->proceeds, to_seller, &proceeds_total) != SUCCESS) {
    GTX_LOG("buy: seller's proceeds exceed u64");
    return GTX_CUSTOM_ERROR(TRADING_ERROR_COST_OVERFLOW);
  }
  uint64_t remaining = o->remaining - amount;

  /* Energy first, then payment: all three transfers succeed or the whole instruction fails. The last
   * fill empties the vault (GRID sent to it from outside goes along) so that it can be closed, its rent
   * returning to the seller. */
  VaultRelease release = {vault, order_account, buyer_grid, seller, remaining == 0 ? escrow.amount : amount,
                          remaining == 0};
  GtxTokenTransfer pay = {buyer_thbc, seller_thbc, buyer, to_seller, (const SolSignerSeeds *)0};
  GtxTokenTransfer take_fee = {buyer_thbc, fee_account, buyer, fee, (const SolSignerSeeds *)0};
  GTX_TRY(vault_release(&release, o));
  if (to_seller != 0)
    GTX_TRY(gtx_token_transfer(&pay));
  if (fee != 0)
    GTX_TRY(gtx_token_transfer(&take_fee));

  o->remaining = remaining;
  o->proceeds = proceeds_total;
  o->state = remaining == 0 ? ORDER_STATE_FILLED : ORDER_STATE_PARTIALLY_FILLED;
  Fill fill = {order_account, buyer, fee_account, &grid_to, o, amount, release.amount, cost, fee, now};
  emit_fill(&fill);
  return SUCCESS;
}
