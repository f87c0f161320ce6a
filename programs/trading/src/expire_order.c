#include <gtx_sol.h>
#include <gtx/token.h>

#include "escrow.h"
#include "events.h"
#include "instructions.h"
#include "state.h"

/* No signer: anyone (a keeper, the backend, the buyer) may expire an order once the clock has passed
 * expires_at; the escrow can only go to the seller's own GRID account and the rent to the seller. */
uint64_t process_expire_order(const GtxInput *in) {
  GTX_TRY(expect_accounts(in, 5));
  const SolAccountInfo *order_account = &in->accounts[0];
  const SolAccountInfo *seller = &in->accounts[3];
  if (in->data_len != 1) {
    GTX_LOG("expire_order: data must be [4]");
    return ERROR_INVALID_INSTRUCTION_DATA;
  }
  GTX_TRY(expect_program(&in->accounts[4], &GTX_TOKEN_PROGRAM_ID));
  Order *o;
  GTX_TRY(order_load(order_account, in->program_id, &o));
  if (!gtx_pubkey_eq(seller->key, &o->seller)) {
    GTX_LOG_KEY("expire_order: not the order's seller:", seller->key);
    return GTX_CUSTOM_ERROR(TRADING_ERROR_WRONG_SELLER);
  }
  GTX_TRY(expect_writable(seller));
  EscrowReturn r = {in, order_account, o, &in->accounts[1], &in->accounts[2], seller, true};
  return escrow_return(&r);
}
