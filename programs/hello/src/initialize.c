#include <gtx_sol.h>

#include "events.h"
#include "instructions.h"
#include "state.h"

uint64_t process_initialize(const GtxInput *in) {
  GTX_TRY(expect_accounts(in, 3));
  const SolAccountInfo *authority = &in->accounts[0];
  SolAccountInfo *greeting = &in->accounts[1];
  if (in->data_len != 2) {
    GTX_LOG("initialize: data must be [0, bump]");
    return ERROR_INVALID_INSTRUCTION_DATA;
  }
  uint8_t bump = in->data[1];
  GTX_TRY(expect_signer(authority));
  GTX_TRY(expect_writable(authority));
  GTX_TRY(expect_writable(greeting));
  GTX_TRY(expect_program(&in->accounts[2], &GTX_SYSTEM_PROGRAM_ID));

  SolSignerSeed parts[3];
  SolSignerSeeds seeds;
  greeting_seeds(authority->key, parts, &seeds);
  /* Only at the canonical bump: one greeting per authority. */
  GTX_TRY(gtx_expect_canonical_pda(greeting, &seeds, bump, in->program_id,
                                   GTX_CUSTOM_ERROR(HELLO_ERROR_NON_CANONICAL_BUMP)));
  if (*greeting->lamports != 0) {
    GTX_LOG_KEY("greeting already exists:", greeting->key);
    return ERROR_ACCOUNT_ALREADY_INITIALIZED;
  }

  uint64_t lamports;
  GTX_TRY(gtx_rent_minimum_balance(GREETING_LEN, &lamports));
  /* Sign as the PDA: the same seeds plus the bump. */
  parts[2].addr = &bump;
  parts[2].len = 1;
  SolSignerSeeds signer = {parts, 3};
  GtxCreateAccount create = {authority, greeting, lamports, GREETING_LEN, in->program_id, &signer};
  GTX_TRY(gtx_create_account(&create));

  Greeting *g = (Greeting *)greeting->data;
  g->version = GREETING_VERSION;
  g->bump = bump;
  gtx_memcpy(&g->authority, authority->key, GTX_PUBKEY_LEN);
  g->count = 0;
  g->total = 0;
  GTX_LOG("hello: greeting created");
  GreetingCreatedEvent e;
  gtx_event_header(&e.header, GTX_TAG_GreetingCreated, HELLO_EVENT_VERSION);
  gtx_memcpy(&e.greeting, greeting->key, GTX_PUBKEY_LEN);
  gtx_memcpy(&e.authority, authority->key, GTX_PUBKEY_LEN);
  gtx_emit(&e, sizeof(e));
  return SUCCESS;
}
