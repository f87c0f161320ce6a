#include <gtx_sol.h>
#include <gtx/token.h>

#include "escrow.h"
#include "events.h"
#include "instructions.h"
#include "state.h"

uint64_t escrow_return(const EscrowReturn *r) {
  Order *o = r->order;
  GTX_TRY(expect_writable(r->order_account));
  if (!order_is_open(o)) {
    GTX_LOG_KEY("order is not active:", r->order_account->key);
    return GTX_CUSTOM_ERROR(TRADING_ERROR_ORDER_NOT_ACTIVE);
  }
  GtxTokenAccount escrow, dest;
  GTX_TRY(vault_check(r->vault, r->order_account, o, &escrow));
  GTX_TRY(expect_writable(r->seller_grid));
  GTX_TRY(gtx_token_account_load(r->seller_grid, &dest));
  if (!gtx_pubkey_eq(dest.mint, escrow.mint)) {
    GTX_LOG_KEY("not a GRID account of the order's mint:", r->seller_grid->key);
    return GTX_CUSTOM_ERROR(TRADING_ERROR_WRONG_MINT);
  }
  if (!gtx_pubkey_eq(dest.owner, &o->seller)) {
    GTX_LOG_KEY("GRID account is not the seller's:", r->seller_grid->key);
    return GTX_CUSTOM_ERROR(TRADING_ERROR_WRONG_TOKEN_OWNER);
  }
  int64_t now;
  GTX_TRY(now_unix(&now));
  if (r->expire && now < o->expires_at) {
    GTX_LOG_KEY("expire_order: order has not expired yet:", r->order_account->key);
    return GTX_CUSTOM_ERROR(TRADING_ERROR_ORDER_NOT_EXPIRED);
  }
  /* The whole balance, not just `remaining`: GRID someone sent to the vault would otherwise keep it
   * from being closed. */
  VaultRelease release = {r->vault, r->order_account, r->seller_grid, r->rent_to, escrow.amount, true};
  GTX_TRY(vault_release(&release, o));
  o->state = r->expire ? ORDER_STATE_EXPIRED : ORDER_STATE_CANCELLED;
  OrderEndedEvent e;
  gtx_event_header(&e.header, r->expire ? GTX_TAG_OrderExpired : GTX_TAG_OrderCancelled, TRADING_EVENT_VERSION);
  gtx_memcpy(&e.order, r->order_account->key, GTX_PUBKEY_LEN);
  gtx_memcpy(&e.seller, &o->seller, GTX_PUBKEY_LEN);
  gtx_memcpy(&e.seller_grid, r->seller_grid->key, GTX_PUBKEY_LEN);
  e.refunded = escrow.amount;
  e.remaining = o->remaining;
  e.timestamp = now;
  gtx_emit(&e, sizeof(e));
  return SUCCESS;
}
