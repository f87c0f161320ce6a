#include <gtx_sol.h>

#include "events.h"
#include "instructions.h"
#include "state.h"

uint64_t process_register_user(const GtxInput *in) {
  GTX_TRY(expect_accounts(in, 3));
  const SolAccountInfo *wallet = &in->accounts[0];
  SolAccountInfo *user = &in->accounts[1];
  if (in->data_len != 3) {
    GTX_LOG("register_user: data must be [1, bump, kind]");
    return ERROR_INVALID_INSTRUCTION_DATA;
  }
  uint8_t kind = in->data[2];
  GTX_TRY(expect_signer(wallet));
  GTX_TRY(expect_writable(wallet));
  GTX_TRY(expect_writable(user));
  GTX_TRY(expect_program(&in->accounts[2], &GTX_SYSTEM_PROGRAM_ID));
  if (kind != USER_KIND_PROSUMER && kind != USER_KIND_CONSUMER) {
    GTX_LOG("register_user: kind must be 1 (prosumer) or 2 (consumer)");
    return GTX_CUSTOM_ERROR(REGISTRY_ERROR_INVALID_USER_KIND);
  }

  SolSignerSeed parts[3];
  SolSignerSeeds unused;
  registry_user_seeds(wallet->key, parts, &unused);
  RegistryCreate create = {in, wallet, user, parts, 2, in->data[1], USER_LEN};
  GTX_TRY(registry_create_pda(&create));

  User *u = (User *)user->data;
  u->discriminator = REGISTRY_DISC_USER;
  u->version = REGISTRY_VERSION;
  u->bump = in->data[1];
  u->kind = kind;
  u->meter_count = 0;
  gtx_memcpy(&u->wallet, wallet->key, GTX_PUBKEY_LEN);
  u->registered_at = registry_now();
  UserRegisteredEvent e;
  gtx_event_header(&e.header, GTX_TAG_UserRegistered, REGISTRY_EVENT_VERSION);
  gtx_memcpy(&e.wallet, wallet->key, GTX_PUBKEY_LEN);
  gtx_memcpy(&e.user, user->key, GTX_PUBKEY_LEN);
  e.kind = kind;
  e.registered_at = u->registered_at;
  gtx_emit(&e, sizeof(e));
  return SUCCESS;
}
