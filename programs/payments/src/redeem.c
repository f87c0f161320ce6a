#include <gtx_sol.h>
#include <gtx/token.h>

#include "events.h"
#include "instructions.h"
#include "state.h"

uint64_t process_redeem(const GtxInput *in) {
  GTX_TRY(expect_accounts(in, 5));
  const SolAccountInfo *holder = &in->accounts[0];
  const SolAccountInfo *account = &in->accounts[1];
  const SolAccountInfo *mint = &in->accounts[2];
  if (in->data_len != 1 + 8 + PAYMENTS_REFERENCE_LEN) {
    GTX_LOG("redeem: data must be [2, amount u64, payout_reference[32]]");
    return ERROR_INVALID_INSTRUCTION_DATA;
  }
  uint64_t amount = gtx_load_u64_le(in->data + 1);
  const uint8_t *payout_reference = in->data + 9;
  GTX_TRY(expect_signer(holder));
  GTX_TRY(expect_writable(account));
  GTX_TRY(expect_writable(mint));
  GTX_TRY(expect_program(&in->accounts[4], &GTX_TOKEN_PROGRAM_ID));
  PaymentsConfig *c;
  GTX_TRY(payments_config_load(&in->accounts[3], in->program_id, &c));
  if (!gtx_pubkey_eq(mint->key, &c->mint)) {
    GTX_LOG_KEY("redeem: not the THBC mint:", mint->key);
    return GTX_CUSTOM_ERROR(PAYMENTS_ERROR_WRONG_MINT);
  }
  GtxTokenAccount from;
  GTX_TRY(gtx_token_account_load(account, &from));
  if (!gtx_pubkey_eq(from.mint, &c->mint)) {
    GTX_LOG_KEY("redeem: not a THBC account:", account->key);
    return GTX_CUSTOM_ERROR(PAYMENTS_ERROR_TOKEN_ACCOUNT_WRONG_MINT);
  }
  /* The holder's own account: a delegate cannot redeem someone else's THBC to its own payout. */
  if (!gtx_pubkey_eq(from.owner, holder->key)) {
    GTX_LOG_KEY("redeem: the THBC account is not the signer's:", account->key);
    return GTX_CUSTOM_ERROR(PAYMENTS_ERROR_WRONG_TOKEN_OWNER);
  }
  if (amount == 0) {
    GTX_LOG("redeem: amount is 0");
    return GTX_CUSTOM_ERROR(PAYMENTS_ERROR_ZERO_AMOUNT);
  }
  if (from.amount < amount) {
    GTX_LOG("redeem: the account holds less THBC than the amount");
    sol_log_64_(from.amount, amount, 0, 0, 0);
    return GTX_CUSTOM_ERROR(PAYMENTS_ERROR_INSUFFICIENT_BALANCE);
  }
  uint64_t balance = from.amount - amount;
  GtxTokenBurn burn = {account, mint, holder, amount, (const SolSignerSeeds *)0};
  GTX_TRY(gtx_token_burn(&burn));
  RedeemedEvent e;
  gtx_event_header(&e.header, GTX_TAG_Redeemed, PAYMENTS_EVENT_VERSION);
  gtx_memcpy(&e.holder, holder->key, GTX_PUBKEY_LEN);
  gtx_memcpy(&e.account, account->key, GTX_PUBKEY_LEN);
  e.amount = amount;
  e.balance = balance;
  gtx_memcpy(e.payout_reference, payout_reference, PAYMENTS_REFERENCE_LEN);
  e.timestamp = payments_now();
  gtx_emit(&e, sizeof(e));
  return SUCCESS;
}
