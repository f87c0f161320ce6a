#include <gtx_sol.h>

#include "events.h"
#include "instructions.h"
#include "state.h"

uint64_t process_greet(const GtxInput *in) {
  GTX_TRY(expect_accounts(in, 2));
  const SolAccountInfo *authority = &in->accounts[0];
  const SolAccountInfo *greeting = &in->accounts[1];
  if (in->data_len != 9) {
    GTX_LOG("greet: data must be [1, amount u64]");
    return ERROR_INVALID_INSTRUCTION_DATA;
  }
  uint64_t amount = gtx_load_u64_le(in->data + 1);
  GTX_TRY(expect_signer(authority));
  GTX_TRY(expect_writable(greeting));
  Greeting *g;
  GTX_TRY(greeting_load(greeting, in->program_id, &g));
  if (!gtx_pubkey_eq(&g->authority, authority->key)) {
    GTX_LOG_KEY("greet: signer is not the greeting's authority:", authority->key);
    return GTX_CUSTOM_ERROR(HELLO_ERROR_WRONG_AUTHORITY);
  }
  SolSignerSeed parts[2];
  SolSignerSeeds seeds;
  greeting_seeds(authority->key, parts, &seeds);
  GTX_TRY(expect_pda(greeting, &seeds, g->bump, in->program_id));

  uint64_t count, total;
  GTX_TRY(gtx_add_u64(g->count, 1, &count));
  GTX_TRY(gtx_add_u64(g->total, amount, &total));
  g->count = count;
  g->total = total;

  GTX_LOG("hello, world");
  sol_log_64_(count, total, amount, 0, 0);
  GreetedEvent e;
  gtx_event_header(&e.header, GTX_TAG_Greeted, HELLO_EVENT_VERSION);
  gtx_memcpy(&e.greeting, greeting->key, GTX_PUBKEY_LEN);
  gtx_memcpy(&e.authority, authority->key, GTX_PUBKEY_LEN);
  e.amount = amount;
  e.count = count;
  e.total = total;
  gtx_emit(&e, sizeof(e));
  return SUCCESS;
}
