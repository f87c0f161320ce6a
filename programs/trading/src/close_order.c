#include <gtx_sol.h>

#include "events.h"
#include "instructions.h"
#include "state.h"

/* A finished order (Filled, Cancelled, Expired) has no vault left; its account is only a record. The
 * seller, who paid its rent, may close it: lamports to the seller, data zeroed so that nothing reads a
 * stale order should the address be reused in the same transaction. */
uint64_t process_close_order(const GtxInput *in) {
  GTX_TRY(expect_accounts(in, 2));
  const SolAccountInfo *seller = &in->accounts[0];
  const SolAccountInfo *order_account = &in->accounts[1];
  if (in->data_len != 1) {
    GTX_LOG("close_order: data must be [5]");
    return ERROR_INVALID_INSTRUCTION_DATA;
  }
  GTX_TRY(expect_signer(seller));
  GTX_TRY(expect_writable(seller));
  GTX_TRY(expect_writable(order_account));
  Order *o;
  GTX_TRY(order_load(order_account, in->program_id, &o));
  if (!gtx_pubkey_eq(seller->key, &o->seller)) {
    GTX_LOG_KEY("close_order: only the order's seller may close it, not", seller->key);
    return GTX_CUSTOM_ERROR(TRADING_ERROR_NOT_SELLER);
  }
  if (order_is_open(o)) {
    GTX_LOG_KEY("close_order: order still holds escrow:", order_account->key);
    return GTX_CUSTOM_ERROR(TRADING_ERROR_ORDER_STILL_OPEN);
  }
  OrderClosedEvent e;
  gtx_event_header(&e.header, GTX_TAG_OrderClosed, TRADING_EVENT_VERSION);
  gtx_memcpy(&e.order, order_account->key, GTX_PUBKEY_LEN);
  gtx_memcpy(&e.seller, seller->key, GTX_PUBKEY_LEN);
  e.state = o->state;
  e.lamports = *order_account->lamports;
  uint64_t total;
  GTX_TRY(gtx_add_u64(*seller->lamports, *order_account->lamports, &total));
  *seller->lamports = total;
  *order_account->lamports = 0;
  gtx_memset(order_account->data, 0, order_account->data_len);
  gtx_emit(&e, sizeof(e));
  return SUCCESS;
}
