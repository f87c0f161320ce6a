#include <gtx_sol.h>
#include <gtx_reading.h>

#include "events.h"
#include "instructions.h"
#include "state.h"

/* The same rule as the reading's meter_id field: 1-16 characters of [A-Za-z0-9._:-], NUL padded. */
static bool meter_id_ok(const uint8_t *id) {
  int end = 0;
  while (end < GTX_READING_METER_ID_LEN && id[end] != 0) {
    if (!gtx_reading_id_char_ok(id[end]))
      return false;
    end++;
  }
  if (end == 0)
    return false;
  for (int i = end; i < GTX_READING_METER_ID_LEN; i++)
    if (id[i] != 0)
      return false;
  return true;
}

uint64_t process_register_meter(const GtxInput *in) {
  GTX_TRY(expect_accounts(in, 4));
  const SolAccountInfo *owner = &in->accounts[0];
  const SolAccountInfo *user = &in->accounts[1];
  SolAccountInfo *meter = &in->accounts[2];
  if (in->data_len != 2 + GTX_READING_METER_ID_LEN + GTX_PUBKEY_LEN) {
    GTX_LOG("register_meter: data must be [2, bump, meter_id[16], meter_key[32]]");
    return ERROR_INVALID_INSTRUCTION_DATA;
  }
  const uint8_t *meter_id = in->data + 2;
  const uint8_t *meter_key = in->data + 2 + GTX_READING_METER_ID_LEN;
  GTX_TRY(expect_signer(owner));
  GTX_TRY(expect_writable(owner));
  GTX_TRY(expect_writable(user));
  GTX_TRY(expect_writable(meter));
  GTX_TRY(expect_program(&in->accounts[3], &GTX_SYSTEM_PROGRAM_ID));
  User *u;
  GTX_TRY(user_load(user, in->program_id, &u));
  if (!gtx_pubkey_eq(&u->wallet, owner->key)) {
    GTX_LOG_KEY("register_meter: user account belongs to another wallet:", user->key);
    return GTX_CUSTOM_ERROR(REGISTRY_ERROR_WRONG_USER);
  }
  if (!meter_id_ok(meter_id)) {
    GTX_LOG("register_meter: meter id must be 1-16 chars of [A-Za-z0-9._:-], NUL padded");
    return GTX_CUSTOM_ERROR(REGISTRY_ERROR_INVALID_METER_ID);
  }
  uint64_t count;
  GTX_TRY(gtx_add_u64(u->meter_count, 1, &count));
  if (count > 0xFFFFFFFFu)
    return ERROR_ARITHMETIC_OVERFLOW;

  SolSignerSeed parts[3];
  SolSignerSeeds unused;
  registry_meter_seeds(meter_id, parts, &unused);
  RegistryCreate create = {in, owner, meter, parts, 2, in->data[1], METER_LEN};
  GTX_TRY(registry_create_pda(&create));

  Meter *m = (Meter *)meter->data; /* created zeroed */
  m->discriminator = REGISTRY_DISC_METER;
  m->version = REGISTRY_VERSION;
  m->bump = in->data[1];
  m->status = METER_STATUS_PENDING;
  gtx_memcpy(&m->owner, owner->key, GTX_PUBKEY_LEN);
  gtx_memcpy(&m->meter_key, meter_key, GTX_PUBKEY_LEN);
  gtx_memcpy(m->meter_id, meter_id, GTX_READING_METER_ID_LEN);
  m->registered_at = registry_now();
  u->meter_count = (uint32_t)count;
  MeterRegisteredEvent e;
  gtx_event_header(&e.header, GTX_TAG_MeterRegistered, REGISTRY_EVENT_VERSION);
  gtx_memcpy(&e.meter, meter->key, GTX_PUBKEY_LEN);
  gtx_memcpy(e.meter_id, meter_id, GTX_READING_METER_ID_LEN);
  gtx_memcpy(&e.owner, owner->key, GTX_PUBKEY_LEN);
  gtx_memcpy(&e.meter_key, meter_key, GTX_PUBKEY_LEN);
  e.registered_at = m->registered_at;
  gtx_emit(&e, sizeof(e));
  return SUCCESS;
}
