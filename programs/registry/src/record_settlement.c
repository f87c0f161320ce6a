#include <gtx_sol.h>

#include "events.h"
#include "instructions.h"
#include "state.h"

uint64_t process_record_settlement(const GtxInput *in) {
  GTX_TRY(expect_accounts(in, 3));
  const SolAccountInfo *settler = &in->accounts[0];
  const SolAccountInfo *config = &in->accounts[1];
  const SolAccountInfo *meter = &in->accounts[2];
  if (in->data_len != REGISTRY_RECORD_SETTLEMENT_LEN) {
    GTX_LOG("record_settlement: data must be [4, seq, timestamp_ms, import_wh, export_wh, settled_net]");
    return ERROR_INVALID_INSTRUCTION_DATA;
  }
  uint64_t seq = gtx_load_u64_le(in->data + 1);
  uint64_t timestamp_ms = gtx_load_u64_le(in->data + 9);
  uint64_t import_wh = gtx_load_u64_le(in->data + 17);
  uint64_t export_wh = gtx_load_u64_le(in->data + 25);
  int64_t settled = (int64_t)gtx_load_u64_le(in->data + 33);
  GTX_TRY(expect_signer(settler));
  GTX_TRY(expect_writable(meter));
  RegistryConfig *c;
  GTX_TRY(config_load(config, in->program_id, &c));
  Meter *m;
  GTX_TRY(meter_load(meter, in->program_id, &m));
  if (!gtx_pubkey_eq(&c->settlement_authority, settler->key)) {
    GTX_LOG_KEY("record_settlement: signer is not the settlement authority:", settler->key);
    return GTX_CUSTOM_ERROR(REGISTRY_ERROR_NOT_SETTLEMENT_AUTHORITY);
  }
  if (m->status != METER_STATUS_ACTIVE) {
    GTX_LOG_KEY("record_settlement: meter is not active:", meter->key);
    return GTX_CUSTOM_ERROR(REGISTRY_ERROR_METER_NOT_ACTIVE);
  }
  if (m->has_reading && (seq <= m->last_seq || timestamp_ms <= m->last_timestamp_ms)) {
    GTX_LOG("record_settlement: reading is not newer than the last accepted one");
    return GTX_CUSTOM_ERROR(REGISTRY_ERROR_STALE_READING);
  }
  if (import_wh < m->last_import_wh || export_wh < m->last_export_wh) {
    GTX_LOG("record_settlement: a counter went backwards");
    return GTX_CUSTOM_ERROR(REGISTRY_ERROR_COUNTER_ROLLBACK);
  }
  /* The mark is derived, not chosen: the baseline's net generation, then the highest ever accepted. */
  int64_t net;
  GTX_TRY(registry_net_generation(import_wh, export_wh, &net));
  if (settled != registry_next_mark(m, net)) {
    GTX_LOG("record_settlement: settled mark is not the baseline's net, nor max(previous mark, export - import)");
    return GTX_CUSTOM_ERROR(REGISTRY_ERROR_SETTLED_MARK_MISMATCH);
  }
  uint64_t count;
  GTX_TRY(gtx_add_u64(m->settlement_count, 1, &count));
  if (m->settlement_count == 0) {
    /* The baseline: what the counters held when the meter joined is never minted nor certified. */
    m->baseline_net_generation_wh = net;
    m->baseline_timestamp_ms = timestamp_ms;
  }
  m->has_reading = 1;
  m->last_seq = seq;
  m->last_timestamp_ms = timestamp_ms;
  m->last_import_wh = import_wh;
  m->last_export_wh = export_wh;
  m->settled_net_generation_wh = settled;
  m->settlement_count = count;
  SettlementRecordedEvent e;
  gtx_event_header(&e.header, GTX_TAG_SettlementRecorded, REGISTRY_EVENT_VERSION);
  gtx_memcpy(&e.meter, meter->key, GTX_PUBKEY_LEN);
  gtx_memcpy(e.meter_id, m->meter_id, 16);
  gtx_memcpy(&e.owner, &m->owner, GTX_PUBKEY_LEN);
  e.seq = seq;
  e.timestamp_ms = timestamp_ms;
  e.import_wh = import_wh;
  e.export_wh = export_wh;
  e.settled_net_generation_wh = settled;
  e.baseline_net_generation_wh = m->baseline_net_generation_wh;
  e.settlement_count = count;
  gtx_emit(&e, sizeof(e));
  return SUCCESS;
}
