#include <gtx_sol.h>
#include <gtx/create_pda.h>
#include <gtx/token.h>

#include "events.h"
#include "instructions.h"
#include "state.h"

uint64_t process_issue(const GtxInput *in) {
  GTX_TRY(expect_accounts(in, 8));
  const SolAccountInfo *operator_ = &in->accounts[0];
  SolAccountInfo *deposit = &in->accounts[2];
  const SolAccountInfo *mint = &in->accounts[3];
  const SolAccountInfo *destination = &in->accounts[4];
  const SolAccountInfo *authority = &in->accounts[5];
  if (in->data_len != 1 + PAYMENTS_REFERENCE_LEN + 8 + 1) {
    GTX_LOG("issue: data must be [1, reference[32], amount u64, deposit bump]");
    return ERROR_INVALID_INSTRUCTION_DATA;
  }
  const uint8_t *reference = in->data + 1;
  uint64_t amount = gtx_load_u64_le(in->data + 1 + PAYMENTS_REFERENCE_LEN);
  uint8_t bump = in->data[1 + PAYMENTS_REFERENCE_LEN + 8];
  GTX_TRY(expect_signer(operator_));
  GTX_TRY(expect_writable(operator_));
  GTX_TRY(expect_writable(deposit));
  GTX_TRY(expect_writable(mint));
  GTX_TRY(expect_writable(destination));
  GTX_TRY(expect_program(&in->accounts[6], &GTX_TOKEN_PROGRAM_ID));
  GTX_TRY(expect_program(&in->accounts[7], &GTX_SYSTEM_PROGRAM_ID));
  PaymentsConfig *c;
  GTX_TRY(payments_config_load(&in->accounts[1], in->program_id, &c));
  if (!gtx_pubkey_eq(operator_->key, &c->operator_)) {
    GTX_LOG_KEY("issue: signer is not the payment operator:", operator_->key);
    return GTX_CUSTOM_ERROR(PAYMENTS_ERROR_NOT_OPERATOR);
  }
  if (amount == 0) {
    GTX_LOG("issue: amount is 0");
    return GTX_CUSTOM_ERROR(PAYMENTS_ERROR_ZERO_AMOUNT);
  }
  if (!gtx_pubkey_eq(mint->key, &c->mint)) {
    GTX_LOG_KEY("issue: not the THBC mint:", mint->key);
    return GTX_CUSTOM_ERROR(PAYMENTS_ERROR_WRONG_MINT);
  }
  GtxTokenAccount to;
  GTX_TRY(gtx_token_account_load(destination, &to));
  if (!gtx_pubkey_eq(to.mint, &c->mint)) {
    GTX_LOG_KEY("issue: destination is not a THBC account:", destination->key);
    return GTX_CUSTOM_ERROR(PAYMENTS_ERROR_TOKEN_ACCOUNT_WRONG_MINT);
  }
  if (!gtx_pubkey_eq(authority->key, &c->mint_authority)) {
    GTX_LOG_KEY("issue: not this program's authority PDA:", authority->key);
    return GTX_CUSTOM_ERROR(PAYMENTS_ERROR_WRONG_AUTHORITY);
  }

  /* The deposit record: one per reference, at its canonical address; its existence is the "used". */
  SolSignerSeed parts[3];
  SolSignerSeeds seeds;
  payments_deposit_seeds(reference, parts, &seeds);
  GTX_TRY(gtx_expect_canonical_pda(deposit, &seeds, bump, in->program_id,
                                   GTX_CUSTOM_ERROR(PAYMENTS_ERROR_NON_CANONICAL_BUMP)));
  if (gtx_pubkey_eq(deposit->owner, in->program_id) || deposit->data_len != 0) {
    GTX_LOG_KEY("issue: this deposit reference was issued already:", deposit->key);
    return GTX_CUSTOM_ERROR(PAYMENTS_ERROR_REFERENCE_ALREADY_USED);
  }
  uint64_t lamports;
  GTX_TRY(gtx_rent_minimum_balance(PAYMENTS_DEPOSIT_LEN, &lamports));
  parts[2].addr = &bump;
  parts[2].len = 1;
  SolSignerSeeds signer = {parts, 3};
  GtxCreateAccount create = {operator_, deposit, lamports, PAYMENTS_DEPOSIT_LEN, in->program_id, &signer};
  GTX_TRY(gtx_create_pda(&create));

  uint8_t authority_bump = c->authority_bump;
  SolSignerSeed auth[2] = {{(const uint8_t *)PAYMENTS_AUTHORITY_SEED, sizeof(PAYMENTS_AUTHORITY_SEED) - 1},
                           {&authority_bump, 1}};
  SolSignerSeeds auth_signer = {auth, 2};
  GtxTokenMintTo mint_to = {mint, destination, authority, amount, &auth_signer};
  GTX_TRY(gtx_token_mint_to(&mint_to));

  int64_t now = payments_now();
  Deposit *d = (Deposit *)deposit->data; /* created zeroed */
  d->discriminator = PAYMENTS_DISC_DEPOSIT;
  d->version = PAYMENTS_VERSION;
  d->bump = bump;
  gtx_memcpy(d->reference, reference, PAYMENTS_REFERENCE_LEN);
  gtx_memcpy(&d->payer, to.owner, GTX_PUBKEY_LEN);
  gtx_memcpy(&d->destination, destination->key, GTX_PUBKEY_LEN);
  d->amount = amount;
  d->issued_at = now;
  PaymentIssuedEvent e;
  gtx_event_header(&e.header, GTX_TAG_PaymentIssued, PAYMENTS_EVENT_VERSION);
  gtx_memcpy(&e.deposit, deposit->key, GTX_PUBKEY_LEN);
  gtx_memcpy(e.reference, reference, PAYMENTS_REFERENCE_LEN);
  gtx_memcpy(&e.payer, &d->payer, GTX_PUBKEY_LEN);
  gtx_memcpy(&e.destination, destination->key, GTX_PUBKEY_LEN);
  e.amount = amount;
  gtx_memcpy(&e.operator_, operator_->key, GTX_PUBKEY_LEN);
  e.timestamp = now;
  gtx_emit(&e, sizeof(e));
  return SUCCESS;
}
