#include <gtx_sol.h>

#include "events.h"
#include "instructions.h"
#include "state.h"

/* The registry meter, read-only: owned by the configured registry, the registry's size, discriminator
 * and version, and at the CANONICAL PDA ["meter", meter id] of the id it holds (NonCanonicalBump), so
 * one meter id has one mark and one certificate sequence, whatever the registry let exist. */
static uint64_t load_meter(const SolAccountInfo *a, const CertConfig *c, const Meter **out) {
  if (!gtx_pubkey_eq(a->owner, &c->registry_program)) {
    GTX_LOG_KEY("issue: meter not owned by the configured registry:", a->key);
    return GTX_CUSTOM_ERROR(CERT_ERROR_WRONG_REGISTRY);
  }
  if (a->data_len != METER_LEN) {
    GTX_LOG_KEY("issue: meter account has the wrong size:", a->key);
    return GTX_CUSTOM_ERROR(CERT_ERROR_ACCOUNT_WRONG_SIZE);
  }
  if (a->data[0] != REGISTRY_DISC_METER || a->data[1] != REGISTRY_VERSION) {
    GTX_LOG_KEY("issue: not a registry meter:", a->key);
    return GTX_CUSTOM_ERROR(CERT_ERROR_WRONG_ACCOUNT_TYPE);
  }
  const Meter *m = (const Meter *)a->data;
  SolSignerSeed parts[3];
  SolSignerSeeds seeds;
  registry_meter_seeds(m->meter_id, parts, &seeds);
  GTX_TRY(gtx_expect_canonical_pda(a, &seeds, m->bump, &c->registry_program,
                                   GTX_CUSTOM_ERROR(CERT_ERROR_NON_CANONICAL_BUMP)));
  *out = m;
  return SUCCESS;
}

uint64_t process_issue(const GtxInput *in) {
  GTX_TRY(expect_accounts(in, 6));
  const SolAccountInfo *owner = &in->accounts[0];
  const SolAccountInfo *config = &in->accounts[1];
  const SolAccountInfo *meter = &in->accounts[2];
  SolAccountInfo *mark = &in->accounts[3];
  SolAccountInfo *certificate = &in->accounts[4];
  if (in->data_len != 11) {
    GTX_LOG("issue: data must be [1, mark_bump, certificate_bump, to_wh u64]");
    return ERROR_INVALID_INSTRUCTION_DATA;
  }
  uint8_t mark_bump = in->data[1], cert_bump = in->data[2];
  uint64_t to_wh = gtx_load_u64_le(in->data + 3);
  GTX_TRY(expect_signer(owner));
  GTX_TRY(expect_writable(owner));
  GTX_TRY(expect_writable(mark));
  GTX_TRY(expect_writable(certificate));
  GTX_TRY(expect_program(&in->accounts[5], &GTX_SYSTEM_PROGRAM_ID));
  CertConfig *c;
  GTX_TRY(cert_config_load(config, in->program_id, &c));
  const Meter *m;
  GTX_TRY(load_meter(meter, c, &m));
  if (!gtx_pubkey_eq(&m->owner, owner->key)) {
    GTX_LOG_KEY("issue: signer is not the meter's owner:", owner->key);
    return GTX_CUSTOM_ERROR(CERT_ERROR_NOT_METER_OWNER);
  }

  SolSignerSeed parts[4];
  CertMark *k;
  if (!gtx_pubkey_eq(mark->owner, in->program_id)) {
    /* First certificate of this meter: create its mark at ["mark", meter]. */
    SolSignerSeeds unused;
    cert_mark_seeds(meter->key, parts, &unused);
    CertCreate create = {in, owner, mark, parts, 2, mark_bump, CERT_MARK_LEN};
    GTX_TRY(cert_create_pda(&create));
    k = (CertMark *)mark->data;
    k->discriminator = CERT_DISC_MARK;
    k->version = CERT_VERSION;
    k->bump = mark_bump;
    gtx_memcpy(&k->meter, meter->key, GTX_PUBKEY_LEN);
  } else {
    /* Only this program creates marks, at the canonical PDA of the meter stored inside (re-derived). */
    GTX_TRY(cert_mark_load(mark, in->program_id, &k));
    if (!gtx_pubkey_eq(&k->meter, meter->key)) {
      GTX_LOG_KEY("issue: the mark belongs to another meter:", mark->key);
      return GTX_CUSTOM_ERROR(CERT_ERROR_MARK_METER_MISMATCH);
    }
  }

  uint64_t from_wh = k->certified_up_to_wh;
  if (to_wh <= from_wh) {
    GTX_LOG("issue: this generation is already certified");
    sol_log_64_(to_wh, from_wh, 0, 0, 0);
    return GTX_CUSTOM_ERROR(CERT_ERROR_ALREADY_CERTIFIED);
  }
  /* Certificates count Wh of settled generation above the meter's baseline (its first accepted reading):
   * what its counters held before it joined is never certifiable. The mark never falls below the
   * baseline; both are 0 before the baseline, so nothing is certifiable then. */
  uint64_t certifiable = 0;
  if (m->settled_net_generation_wh > m->baseline_net_generation_wh)
    certifiable = (uint64_t)m->settled_net_generation_wh - (uint64_t)m->baseline_net_generation_wh;
  if (to_wh > certifiable) {
    GTX_LOG("issue: to_wh is above the meter's settled generation since its baseline");
    sol_log_64_(to_wh, certifiable, 0, 0, 0);
    return GTX_CUSTOM_ERROR(CERT_ERROR_EXCEEDS_SETTLED_GENERATION);
  }
  int64_t now;
  GTX_TRY(cert_now(&now));
  int64_t expires_at;
  if (__builtin_add_overflow(now, c->validity_seconds, &expires_at)) {
    GTX_LOG("issue: expiry time overflows");
    return ERROR_ARITHMETIC_OVERFLOW;
  }
  uint64_t index = k->next_index, next;
  GTX_TRY(gtx_add_u64(index, 1, &next));

  uint8_t index_le[8];
  gtx_store_u64_le(index_le, index);
  SolSignerSeeds cert_seeds;
  cert_certificate_seeds(meter->key, index_le, parts, &cert_seeds);
  CertCreate create = {in, owner, certificate, parts, 3, cert_bump, CERT_CERTIFICATE_LEN};
  GTX_TRY(cert_create_pda(&create));

  Certificate *cert = (Certificate *)certificate->data; /* created zeroed */
  cert->discriminator = CERT_DISC_CERTIFICATE;
  cert->version = CERT_VERSION;
  cert->bump = cert_bump;
  cert->status = CERT_STATUS_PENDING;
  gtx_memcpy(&cert->meter, meter->key, GTX_PUBKEY_LEN);
  gtx_memcpy(&cert->owner, owner->key, GTX_PUBKEY_LEN);
  cert->index = index;
  cert->from_wh = from_wh;
  cert->to_wh = to_wh;
  cert->issued_at = now;
  cert->expires_at = expires_at;
  k->certified_up_to_wh = to_wh;
  k->next_index = next;
  CertificateIssuedEvent e;
  gtx_event_header(&e.header, GTX_TAG_CertificateIssued, CERT_EVENT_VERSION);
  cert_event_body(&e.body, certificate->key, cert, now);
  e.expires_at = expires_at;
  gtx_memcpy(e.meter_id, m->meter_id, 16);
  gtx_emit(&e, sizeof(e));
  return SUCCESS;
}
