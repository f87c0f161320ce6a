/* Events of the hello program, the toolchain's example of gtx/events.h (tag, version, then the fields,
 * packed, little endian). Decoders: programs/hello/client.py. */
#ifndef HELLO_EVENTS_H
#define HELLO_EVENTS_H

#include <gtx_sol.h>

#define HELLO_EVENT_VERSION 1u

GTX_EVENT_TAG(GreetingCreated, 0xcf, 0x25, 0x79, 0xe9, 0x98, 0xc6, 0x35, 0xe0);
GTX_EVENT_TAG(Greeted, 0x5f, 0x07, 0x24, 0xa3, 0x13, 0xf7, 0xdf, 0x8e);

typedef struct __attribute__((packed)) {
  GtxEventHeader header;
  SolPubkey greeting;
  SolPubkey authority;
} GreetingCreatedEvent;
_Static_assert(sizeof(GreetingCreatedEvent) == 73, "GreetingCreated layout");

typedef struct __attribute__((packed)) {
  GtxEventHeader header;
  SolPubkey greeting;
  SolPubkey authority;
  uint64_t amount;
  uint64_t count;
  uint64_t total;
} GreetedEvent;
_Static_assert(sizeof(GreetedEvent) == 97, "Greeted layout");

#endif
