#include <gtx_sol.h>
#include <gtx/token.h>
#include <gtx_reading.h>

#include "events.h"
#include "instructions.h"
#include "state.h"

/* Reading decoder status -> this program's error, in the decoder's order. */
static uint64_t reading_error(enum gtx_reading_status status) {
  switch (status) {
  case GTX_READING_BAD_LENGTH:
    GTX_LOG("settle: reading is not 60 bytes");
    return GTX_CUSTOM_ERROR(ENERGY_ERROR_READING_BAD_LENGTH);
  case GTX_READING_BAD_PREFIX:
    GTX_LOG("settle: reading does not start with GTXR");
    return GTX_CUSTOM_ERROR(ENERGY_ERROR_READING_BAD_PREFIX);
  case GTX_READING_BAD_VERSION:
    GTX_LOG("settle: reading version is not 1");
    return GTX_CUSTOM_ERROR(ENERGY_ERROR_READING_BAD_VERSION);
  case GTX_READING_BAD_FLAGS:
    GTX_LOG("settle: reading has unknown flags or clock source 3");
    return GTX_CUSTOM_ERROR(ENERGY_ERROR_READING_BAD_FLAGS);
  case GTX_READING_BAD_RESERVED:
    GTX_LOG("settle: reading reserved bytes are not zero");
    return GTX_CUSTOM_ERROR(ENERGY_ERROR_READING_BAD_RESERVED);
  case GTX_READING_BAD_METER_ID:
    GTX_LOG("settle: reading meter id is not canonical");
    return GTX_CUSTOM_ERROR(ENERGY_ERROR_READING_BAD_METER_ID);
  case GTX_READING_BAD_POWER:
    GTX_LOG("settle: reading power_w set without POWER_PRESENT");
    return GTX_CUSTOM_ERROR(ENERGY_ERROR_READING_BAD_POWER);
  case GTX_READING_METER_ERROR:
    GTX_LOG("settle: reading carries METER_ERROR, never credited");
    return GTX_CUSTOM_ERROR(ENERGY_ERROR_READING_METER_ERROR);
  default:
    return SUCCESS;
  }
}

/* CPI: registry RecordSettlement, signed by the authority PDA (the registry's settlement authority). */
typedef struct {
  const GtxInput *in;
  const SolAccountInfo *authority;
  const SolAccountInfo *registry_config;
  const SolAccountInfo *meter;
  const SolAccountInfo *registry_program;
  const gtx_reading_t *reading;
  int64_t settled;
  const SolSignerSeeds *signer;
} RecordArgs;

static uint64_t record_settlement(const RecordArgs *a) {
  uint8_t data[REGISTRY_RECORD_SETTLEMENT_LEN];
  data[0] = REGISTRY_IX_RECORD_SETTLEMENT;
  gtx_store_u64_le(data + 1, a->reading->seq);
  gtx_store_u64_le(data + 9, a->reading->timestamp_ms);
  gtx_store_u64_le(data + 17, a->reading->import_wh);
  gtx_store_u64_le(data + 25, a->reading->export_wh);
  gtx_store_u64_le(data + 33, (uint64_t)a->settled);
  /* RecordSettlement's accounts: settlement authority [s], config [], meter [w] */
  SolAccountMeta metas[3] = {
      {a->authority->key, false, true},
      {a->registry_config->key, false, false},
      {a->meter->key, true, false},
  };
  SolAccountInfo infos[3] = {*a->authority, *a->registry_config, *a->meter};
  SolInstruction ix = {a->registry_program->key, metas, 3, data, sizeof(data)};
  return gtx_invoke_signed(&ix, infos, 3, a->signer, 1);
}

/* BaselineRecorded for a meter's first reading, GridMinted (amount possibly 0) for every later one. */
typedef struct {
  const SolAccountInfo *meter;
  const SolAccountInfo *destination;
  const Meter *m;
  const gtx_reading_t *r;
  int64_t previous_mark;
  int64_t mark;
  uint64_t amount;
  bool baseline;
} SettleEvent;

static void emit_settle_event(const SettleEvent *s) {
  if (s->baseline) {
    BaselineRecordedEvent e;
    gtx_event_header(&e.header, GTX_TAG_BaselineRecorded, ENERGY_EVENT_VERSION);
    gtx_memcpy(&e.meter, s->meter->key, GTX_PUBKEY_LEN);
    gtx_memcpy(e.meter_id, s->r->meter_id, GTX_READING_METER_ID_LEN);
    gtx_memcpy(&e.owner, &s->m->owner, GTX_PUBKEY_LEN);
    e.seq = s->r->seq;
    e.timestamp_ms = s->r->timestamp_ms;
    e.import_wh = s->r->import_wh;
    e.export_wh = s->r->export_wh;
    e.baseline_net_generation_wh = s->mark;
    gtx_emit(&e, sizeof(e));
    return;
  }
  GridMintedEvent e;
  gtx_event_header(&e.header, GTX_TAG_GridMinted, ENERGY_EVENT_VERSION);
  gtx_memcpy(&e.meter, s->meter->key, GTX_PUBKEY_LEN);
  gtx_memcpy(e.meter_id, s->r->meter_id, GTX_READING_METER_ID_LEN);
  gtx_memcpy(&e.owner, &s->m->owner, GTX_PUBKEY_LEN);
  gtx_memcpy(&e.destination, s->destination->key, GTX_PUBKEY_LEN);
  e.seq = s->r->seq;
  e.timestamp_ms = s->r->timestamp_ms;
  e.import_wh = s->r->import_wh;
  e.export_wh = s->r->export_wh;
  e.previous_mark = s->previous_mark;
  e.mark = s->mark;
  e.amount = s->amount;
  gtx_emit(&e, sizeof(e));
}

uint64_t process_settle_and_mint(const GtxInput *in) {
  GTX_TRY(expect_accounts(in, 9));
  const SolAccountInfo *config = &in->accounts[0];
  const SolAccountInfo *meter = &in->accounts[1];
  const SolAccountInfo *destination = &in->accounts[2];
  const SolAccountInfo *mint = &in->accounts[3];
  const SolAccountInfo *authority = &in->accounts[4];
  const SolAccountInfo *registry_config = &in->accounts[5];
  const SolAccountInfo *registry_program = &in->accounts[6];
  const SolAccountInfo *token_program = &in->accounts[7];
  const SolAccountInfo *instructions = &in->accounts[8];

  const uint8_t *bytes = in->data + 1;
  gtx_reading_t r;
  GTX_TRY(reading_error(gtx_reading_parse(bytes, in->data_len - 1, &r)));

  EnergyConfig *c;
  GTX_TRY(energy_config_load(config, in->program_id, &c));
  const Meter *m;
  GTX_TRY(energy_meter_load(meter, c, &m));
  GTX_TRY(expect_writable(meter));
  if (!gtx_memeq(m->meter_id, r.meter_id, GTX_READING_METER_ID_LEN)) {
    GTX_LOG_KEY("settle: the reading is for another meter than", meter->key);
    return GTX_CUSTOM_ERROR(ENERGY_ERROR_METER_MISMATCH);
  }
  if (m->status != METER_STATUS_ACTIVE) {
    GTX_LOG_KEY("settle: meter is not active:", meter->key);
    return GTX_CUSTOM_ERROR(ENERGY_ERROR_METER_NOT_ACTIVE);
  }
  /* The authorisation: the precompile verified the meter's registered key over exactly these bytes. */
  uint64_t verified = gtx_find_ed25519_verification(instructions, m->meter_key.x, bytes, GTX_READING_LEN);
  if (verified == ERROR_MISSING_REQUIRED_SIGNATURES) {
    GTX_LOG_KEY("settle: reading not signed by the meter's registered key:", meter->key);
    return GTX_CUSTOM_ERROR(ENERGY_ERROR_READING_NOT_VERIFIED);
  }
  GTX_TRY(verified);
  if (m->has_reading && r.seq <= m->last_seq) {
    GTX_LOG("settle: sequence number not above the last accepted one (replay)");
    sol_log_64_(r.seq, m->last_seq, 0, 0, 0);
    return GTX_CUSTOM_ERROR(ENERGY_ERROR_REPLAYED_READING);
  }
  if (m->has_reading && r.timestamp_ms <= m->last_timestamp_ms) {
    GTX_LOG("settle: timestamp not above the last accepted one");
    return GTX_CUSTOM_ERROR(ENERGY_ERROR_STALE_TIMESTAMP);
  }
  if (r.import_wh < m->last_import_wh || r.export_wh < m->last_export_wh) {
    GTX_LOG("settle: a cumulative counter went backwards");
    sol_log_64_(r.import_wh, m->last_import_wh, r.export_wh, m->last_export_wh, 0);
    return GTX_CUSTOM_ERROR(ENERGY_ERROR_COUNTER_ROLLBACK);
  }

  /* The meter's first accepted reading is its baseline: the mark becomes its net generation and nothing
   * is minted (energy counted before the meter joined is never credited). Afterwards mint
   * (export - import) - mark when positive, in base units (1 Wh = 10^6), and raise the mark. */
  int64_t net;
  GTX_TRY(registry_net_generation(r.import_wh, r.export_wh, &net));
  int64_t settled = registry_next_mark(m, net);
  int64_t previous_mark = m->settled_net_generation_wh; /* the CPI below rewrites the meter */
  bool baseline = m->settlement_count == 0;
  uint64_t amount = 0;
  if (!baseline && settled > m->settled_net_generation_wh) {
    /* settled > previous mark, both i64: the difference fits a u64 without wrapping. */
    uint64_t wh = (uint64_t)settled - (uint64_t)m->settled_net_generation_wh;
    GTX_TRY(gtx_mul_u64(wh, GRID_BASE_UNITS_PER_WH, &amount));
  }

  if (!gtx_pubkey_eq(mint->key, &c->mint)) {
    GTX_LOG_KEY("settle: not the GRID mint:", mint->key);
    return GTX_CUSTOM_ERROR(ENERGY_ERROR_WRONG_MINT);
  }
  GtxTokenAccount dest;
  GTX_TRY(gtx_token_account_load(destination, &dest));
  if (!gtx_pubkey_eq(dest.mint, &c->mint)) {
    GTX_LOG_KEY("settle: destination is not a GRID account:", destination->key);
    return GTX_CUSTOM_ERROR(ENERGY_ERROR_TOKEN_ACCOUNT_WRONG_MINT);
  }
  if (!gtx_pubkey_eq(dest.owner, &m->owner)) {
    GTX_LOG_KEY("settle: destination is not owned by the meter's owner:", destination->key);
    return GTX_CUSTOM_ERROR(ENERGY_ERROR_WRONG_TOKEN_OWNER);
  }
  if (!gtx_pubkey_eq(authority->key, &c->authority)) {
    GTX_LOG_KEY("settle: not this program's authority PDA:", authority->key);
    return GTX_CUSTOM_ERROR(ENERGY_ERROR_WRONG_AUTHORITY);
  }
  GTX_TRY(expect_program(registry_program, &c->registry_program));
  GTX_TRY(expect_program(token_program, &GTX_TOKEN_PROGRAM_ID));

  uint8_t bump = c->authority_bump;
  SolSignerSeed seed[2] = {{(const uint8_t *)ENERGY_AUTHORITY_SEED, sizeof(ENERGY_AUTHORITY_SEED) - 1}, {&bump, 1}};
  SolSignerSeeds signer = {seed, 2};
  RecordArgs record = {in, authority, registry_config, meter, registry_program, &r, settled, &signer};
  GTX_TRY(record_settlement(&record));
  if (amount > 0) {
    GtxTokenMintTo mint_to = {mint, destination, authority, amount, &signer};
    GTX_TRY(gtx_token_mint_to(&mint_to));
  }

  SettleEvent event = {meter, destination, m, &r, previous_mark, settled, amount, baseline};
  emit_settle_event(&event);
  return SUCCESS;
}
