#include <gtx_sol.h>
#include <gtx/token.h>

#include "events.h"
#include "instructions.h"
#include "state.h"

uint64_t process_consume(const GtxInput *in) {
  GTX_TRY(expect_accounts(in, 5));
  const SolAccountInfo *holder = &in->accounts[0];
  const SolAccountInfo *account = &in->accounts[1];
  const SolAccountInfo *mint = &in->accounts[2];
  if (in->data_len != 9) {
    GTX_LOG("consume: data must be [2, amount u64]");
    return ERROR_INVALID_INSTRUCTION_DATA;
  }
  uint64_t amount = gtx_load_u64_le(in->data + 1);
  GTX_TRY(expect_signer(holder));
  GTX_TRY(expect_writable(account));
  GTX_TRY(expect_writable(mint));
  GTX_TRY(expect_program(&in->accounts[4], &GTX_TOKEN_PROGRAM_ID));
  EnergyConfig *c;
  GTX_TRY(energy_config_load(&in->accounts[3], in->program_id, &c));
  if (!gtx_pubkey_eq(mint->key, &c->mint)) {
    GTX_LOG_KEY("consume: not the GRID mint:", mint->key);
    return GTX_CUSTOM_ERROR(ENERGY_ERROR_WRONG_MINT);
  }
  GtxTokenAccount from;
  GTX_TRY(gtx_token_account_load(account, &from));
  if (!gtx_pubkey_eq(from.mint, &c->mint)) {
    GTX_LOG_KEY("consume: not a GRID account:", account->key);
    return GTX_CUSTOM_ERROR(ENERGY_ERROR_TOKEN_ACCOUNT_WRONG_MINT);
  }
  /* The holder's own account: a delegate of someone else's GRID does not consume energy for them. */
  if (!gtx_pubkey_eq(from.owner, holder->key)) {
    GTX_LOG_KEY("consume: the GRID account is not the signer's:", account->key);
    return GTX_CUSTOM_ERROR(ENERGY_ERROR_WRONG_TOKEN_OWNER);
  }
  if (amount == 0) {
    GTX_LOG("consume: amount is 0");
    return GTX_CUSTOM_ERROR(ENERGY_ERROR_ZERO_AMOUNT);
  }
  if (from.amount < amount) {
    GTX_LOG("consume: the account holds less GRID than the amount");
    sol_log_64_(from.amount, amount, 0, 0, 0);
    return GTX_CUSTOM_ERROR(ENERGY_ERROR_INSUFFICIENT_BALANCE);
  }
  uint64_t balance = from.amount - amount;
  GtxTokenBurn burn = {account, mint, holder, amount, (const SolSignerSeeds *)0};
  GTX_TRY(gtx_token_burn(&burn));
  SolClock clock;
  int64_t now = sol_get_clock_sysvar(&clock) == 0 ? clock.unix_timestamp : 0;
  GridConsumedEvent e;
  gtx_event_header(&e.header, GTX_TAG_GridConsumed, ENERGY_EVENT_VERSION);
  gtx_memcpy(&e.holder, holder->key, GTX_PUBKEY_LEN);
  gtx_memcpy(&e.account, account->key, GTX_PUBKEY_LEN);
  e.amount = amount;
  e.balance = balance;
  e.timestamp = now;
  gtx_emit(&e, sizeof(e));
  return SUCCESS;
}
