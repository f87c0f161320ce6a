#include <gtx_sol.h>

#include "events.h"
#include "instructions.h"
#include "state.h"

uint64_t process_reassign_meter(const GtxInput *in) {
  GTX_TRY(expect_accounts(in, 5));
  const SolAccountInfo *meter = &in->accounts[2];
  const SolAccountInfo *old_user = &in->accounts[3];
  const SolAccountInfo *new_user = &in->accounts[4];
  if (in->data_len != 1 + GTX_PUBKEY_LEN) {
    GTX_LOG("reassign_meter: data must be [6, meter_key[32]]");
    return ERROR_INVALID_INSTRUCTION_DATA;
  }
  const uint8_t *key = in->data + 1;
  Meter *m;
  GTX_TRY(registry_authority_meter(in, &m));
  GTX_TRY(expect_writable(old_user));
  GTX_TRY(expect_writable(new_user));
  User *from, *to;
  GTX_TRY(user_load(old_user, in->program_id, &from));
  GTX_TRY(user_load(new_user, in->program_id, &to));
  if (!gtx_pubkey_eq(&from->wallet, &m->owner)) {
    GTX_LOG_KEY("reassign_meter: user account is not the meter owner's:", old_user->key);
    return GTX_CUSTOM_ERROR(REGISTRY_ERROR_WRONG_USER);
  }
  if (m->status == METER_STATUS_DECOMMISSIONED) {
    GTX_LOG_KEY("reassign_meter: meter is decommissioned:", meter->key);
    return GTX_CUSTOM_ERROR(REGISTRY_ERROR_METER_DECOMMISSIONED);
  }
  if (m->has_reading || m->settlement_count != 0 || m->settled_net_generation_wh != 0) {
    GTX_LOG_KEY("reassign_meter: meter has settlement history:", meter->key);
    return GTX_CUSTOM_ERROR(REGISTRY_ERROR_METER_HAS_HISTORY);
  }
  uint64_t count;
  GTX_TRY(gtx_add_u64(to->meter_count, 1, &count));
  if (count > 0xFFFFFFFFu || from->meter_count == 0)
    return ERROR_ARITHMETIC_OVERFLOW;
  /* The same user on both sides is a key change only: the count stays. */
  from->meter_count -= 1;
  to->meter_count += 1;
  MeterReassignedEvent e;
  gtx_event_header(&e.header, GTX_TAG_MeterReassigned, REGISTRY_EVENT_VERSION);
  gtx_memcpy(&e.meter, meter->key, GTX_PUBKEY_LEN);
  gtx_memcpy(e.meter_id, m->meter_id, 16);
  gtx_memcpy(&e.previous_owner, &m->owner, GTX_PUBKEY_LEN);
  gtx_memcpy(&e.owner, &to->wallet, GTX_PUBKEY_LEN);
  gtx_memcpy(&e.meter_key, key, GTX_PUBKEY_LEN);
  e.previous_status = m->status;
  e.status = METER_STATUS_PENDING;
  gtx_memcpy(&m->owner, &to->wallet, GTX_PUBKEY_LEN);
  gtx_memcpy(&m->meter_key, key, GTX_PUBKEY_LEN);
  m->status = METER_STATUS_PENDING;
  gtx_emit(&e, sizeof(e));
  return SUCCESS;
}
