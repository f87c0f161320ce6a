/* Events of the certificates program (gtx/events.h header: tag, version; then the fields below, packed,
 * little endian). Every certificate event starts with the same body: which certificate, whose, which Wh,
 * its status after the change and when. Layouts: docs/programs.md "Events"; decoders:
 * programs/certificates/client.py. */
#ifndef CERTIFICATES_EVENTS_H
#define CERTIFICATES_EVENTS_H

#include <gtx_sol.h>

#include "state.h"

#define CERT_EVENT_VERSION 1u

GTX_EVENT_TAG(CertificatesInitialized, 0xd8, 0x8c, 0x44, 0xd2, 0x8a, 0xcc, 0x5d, 0x34);
GTX_EVENT_TAG(CertificateIssued, 0xa7, 0xe5, 0x86, 0xde, 0x33, 0x31, 0x4a, 0xd7);
GTX_EVENT_TAG(CertificateValidated, 0x62, 0x3a, 0xdd, 0xc7, 0x7e, 0x72, 0x41, 0xb3);
GTX_EVENT_TAG(CertificateTransferred, 0x34, 0x1e, 0x37, 0xeb, 0x77, 0x1c, 0xb3, 0xd7);
GTX_EVENT_TAG(CertificateRetired, 0x69, 0xbd, 0x6d, 0xea, 0x89, 0x9b, 0x82, 0x2f);
GTX_EVENT_TAG(CertificateRevoked, 0xc4, 0x1f, 0x73, 0x58, 0x6b, 0xe0, 0xfe, 0xf8);
GTX_EVENT_TAG(CertificateExpired, 0x1b, 0xf9, 0x92, 0x2a, 0xaf, 0x54, 0xbd, 0x46);

typedef struct __attribute__((packed)) {
  GtxEventHeader header;
  SolPubkey config;
  SolPubkey governance;
  SolPubkey registry_program;
  int64_t validity_seconds;
} CertificatesInitializedEvent;
_Static_assert(sizeof(CertificatesInitializedEvent) == 113, "CertificatesInitialized layout");

typedef struct __attribute__((packed)) {
  SolPubkey certificate;
  SolPubkey meter;
  SolPubkey holder; /* after the change */
  uint64_t index;
  uint64_t from_wh; /* the certificate covers [from_wh, to_wh) above the meter's baseline */
  uint64_t to_wh;
  uint8_t status;    /* after the change */
  int64_t timestamp; /* Clock unix_timestamp of the change */
} CertEventBody;
_Static_assert(sizeof(CertEventBody) == 129, "certificate event body");

typedef struct __attribute__((packed)) {
  GtxEventHeader header;
  CertEventBody body;
  int64_t expires_at;
  uint8_t meter_id[16];
} CertificateIssuedEvent;
_Static_assert(sizeof(CertificateIssuedEvent) == 162, "CertificateIssued layout");

/* Validated (signer: governance) and Transferred (signer: previous holder) carry one more key. */
typedef struct __attribute__((packed)) {
  GtxEventHeader header;
  CertEventBody body;
  SolPubkey other; /* Validated: governance; Transferred: previous holder */
} CertKeyEvent;
_Static_assert(sizeof(CertKeyEvent) == 170, "CertificateValidated / CertificateTransferred layout");

/* Retired, Expired. */
typedef struct __attribute__((packed)) {
  GtxEventHeader header;
  CertEventBody body;
} CertPlainEvent;
_Static_assert(sizeof(CertPlainEvent) == 138, "CertificateRetired / CertificateExpired layout");

typedef struct __attribute__((packed)) {
  GtxEventHeader header;
  CertEventBody body;
  uint16_t reason;
  SolPubkey governance;
} CertificateRevokedEvent;
_Static_assert(sizeof(CertificateRevokedEvent) == 172, "CertificateRevoked layout");

static inline void cert_event_body(CertEventBody *b, const SolPubkey *certificate, const Certificate *c,
                                   int64_t timestamp) {
  gtx_memcpy(&b->certificate, certificate, GTX_PUBKEY_LEN);
  gtx_memcpy(&b->meter, &c->meter, GTX_PUBKEY_LEN);
  gtx_memcpy(&b->holder, &c->owner, GTX_PUBKEY_LEN);
  b->index = c->index;
  b->from_wh = c->from_wh;
  b->to_wh = c->to_wh;
  b->status = c->status;
  b->timestamp = timestamp;
}

/* Retired / Expired: the body alone. */
static inline void cert_emit_plain(const uint8_t tag[GTX_EVENT_TAG_LEN], const SolPubkey *certificate,
                                   const Certificate *c, int64_t timestamp) {
  CertPlainEvent e;
  gtx_event_header(&e.header, tag, CERT_EVENT_VERSION);
  cert_event_body(&e.body, certificate, c, timestamp);
  gtx_emit(&e, sizeof(e));
}

/* Validated / Transferred: the body and one key. */
static inline void cert_emit_with_key(const uint8_t tag[GTX_EVENT_TAG_LEN], const SolPubkey *certificate,
                                      const Certificate *c, int64_t timestamp, const SolPubkey *other) {
  CertKeyEvent e;
  gtx_event_header(&e.header, tag, CERT_EVENT_VERSION);
  cert_event_body(&e.body, certificate, c, timestamp);
  gtx_memcpy(&e.other, other, GTX_PUBKEY_LEN);
  gtx_emit(&e, sizeof(e));
}

#endif
