/* gtx/events.h: program events with one common header, logged with sol_log_data.
 *
 * Every state change of a GridTokenX program logs exactly one event per change, as ONE sol_log_data
 * field (a cluster shows "Program data: <base64>"):
 *
 *     [0..8]  tag      sha256("gridtokenx:event:<Name>")[0..8]: recognises our events among other
 *                      programs' logs (and is unique per name across our programs)
 *     [8]     version  the layout version of this event (1 unless its layout changed)
 *     [9..]   fields   fixed layout, little endian (a packed struct)
 *
 * A program declares each event as a packed struct starting with GtxEventHeader, with a
 * _Static_assert on its documented size, and its tag with GTX_EVENT_TAG(Name, 8 bytes) in src/events.h;
 * tests/programs/test_events.py checks every tag against the hash of its name and every layout against
 * docs/programs.md "Events" and the Python decoders (programs/client/events.py). An indexer attributes an
 * event to the program on top of the invoke stack when it was logged, so an event logged by another
 * program with our tag is not ours.
 *
 *   gtx_event_header(&e.header, GTX_TAG_Name, version)
 *   gtx_emit(&e, sizeof(e))
 *
 * Cost: ~100 CU + ~1 CU per byte per event. Keep events lean: a cluster keeps 10,000 bytes of a
 * transaction's logs. */
#ifndef GTX_EVENTS_H
#define GTX_EVENTS_H

#include "bytes.h"
#include "syscalls.h"

#define GTX_EVENT_TAG_LEN 8u
#define GTX_EVENT_HEADER_LEN 9u

/* GTX_EVENT_TAG(OrderCreated, 0x.., ...) defines GTX_TAG_OrderCreated[8]. */
#define GTX_EVENT_TAG(name, ...) static const uint8_t GTX_TAG_##name[GTX_EVENT_TAG_LEN] = {__VA_ARGS__}

typedef struct __attribute__((packed)) {
  uint8_t tag[GTX_EVENT_TAG_LEN];
  uint8_t version;
} GtxEventHeader;
_Static_assert(sizeof(GtxEventHeader) == GTX_EVENT_HEADER_LEN, "event header");

static inline void gtx_event_header(GtxEventHeader *h, const uint8_t tag[GTX_EVENT_TAG_LEN], uint8_t version) {
  gtx_memcpy(h->tag, tag, GTX_EVENT_TAG_LEN);
  h->version = version;
}

static inline void gtx_emit(const void *event, uint64_t len) {
  SolBytes field = {(const uint8_t *)event, len};
  sol_log_data(&field, 1);
}

#endif
