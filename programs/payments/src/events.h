/* Events of the payments program (gtx/events.h header: tag, version; then the fields below, packed,
 * little endian). Layouts: docs/programs.md "Events"; decoders: programs/payments/client.py. With them an
 * indexer writes D7 (payments) from the chain alone. */
#ifndef PAYMENTS_EVENTS_H
#define PAYMENTS_EVENTS_H

#include <gtx_sol.h>

#define PAYMENTS_EVENT_VERSION 1u

GTX_EVENT_TAG(PaymentsInitialized, 0xc7, 0x77, 0x29, 0x54, 0xc4, 0xda, 0x3f, 0xe0);
GTX_EVENT_TAG(PaymentIssued, 0xa4, 0x9c, 0x8e, 0x81, 0xb6, 0x03, 0xed, 0x56);
GTX_EVENT_TAG(Redeemed, 0xde, 0xb5, 0x0a, 0x09, 0xdd, 0x2d, 0x5d, 0xa3);
GTX_EVENT_TAG(OperatorChanged, 0xe3, 0x9b, 0x51, 0x57, 0xaf, 0x89, 0x1c, 0x27);

typedef struct __attribute__((packed)) {
  GtxEventHeader header;
  SolPubkey config;
  SolPubkey authority;
  SolPubkey operator_;
  SolPubkey mint;
  SolPubkey mint_authority;
} PaymentsInitializedEvent;
_Static_assert(sizeof(PaymentsInitializedEvent) == 169, "PaymentsInitialized layout");

/* Issue: `amount` THBC minted to `destination` (held by `payer`) against deposit `reference`. */
typedef struct __attribute__((packed)) {
  GtxEventHeader header;
  SolPubkey deposit; /* the deposit record PDA */
  uint8_t reference[32];
  SolPubkey payer;
  SolPubkey destination;
  uint64_t amount;
  SolPubkey operator_;
  int64_t timestamp;
} PaymentIssuedEvent;
_Static_assert(sizeof(PaymentIssuedEvent) == 185, "PaymentIssued layout");

/* Redeem: the holder burned `amount` THBC from `account` for the payout `payout_reference`. */
typedef struct __attribute__((packed)) {
  GtxEventHeader header;
  SolPubkey holder;
  SolPubkey account;
  uint64_t amount;
  uint64_t balance; /* the account's balance after the burn */
  uint8_t payout_reference[32];
  int64_t timestamp;
} RedeemedEvent;
_Static_assert(sizeof(RedeemedEvent) == 129, "Redeemed layout");

typedef struct __attribute__((packed)) {
  GtxEventHeader header;
  SolPubkey config;
  SolPubkey previous_operator;
  SolPubkey operator_;
} OperatorChangedEvent;
_Static_assert(sizeof(OperatorChangedEvent) == 105, "OperatorChanged layout");

#endif
