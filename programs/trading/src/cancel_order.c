#include <gtx_sol.h>
#include <gtx/token.h>

#include "escrow.h"
#include "events.h"
#include "instructions.h"
#include "state.h"

uint64_t process_cancel_order(const GtxInput *in) {
  GTX_TRY(expect_accounts(in, 5));
  const SolAccountInfo *seller = &in->accounts[0];
  const SolAccountInfo *order_account = &in->accounts[1];
  if (in->data_len != 1) {
    GTX_LOG("cancel_order: data must be [3]");
    return ERROR_INVALID_INSTRUCTION_DATA;
  }
  GTX_TRY(expect_signer(seller));
  GTX_TRY(expect_writable(seller));
  GTX_TRY(expect_program(&in->accounts[4], &GTX_TOKEN_PROGRAM_ID));
  Order *o;
  GTX_TRY(order_load(order_account, in->program_id, &o));
  if (!gtx_pubkey_eq(seller->key, &o->seller)) {
    GTX_LOG_KEY("cancel_order: only the order's seller may cancel it, not", seller->key);
    return GTX_CUSTOM_ERROR(TRADING_ERROR_NOT_SELLER);
  }
  EscrowReturn r = {in, order_account, o, &in->accounts[2], &in->accounts[3], seller, false};
  return escrow_return(&r);
}
