/* Events of the trading program (gtx/events.h header: tag, version; then the fields below, packed,
 * little endian). A Buy logs OrderFilled (the order's new state) and TradeExecuted (the trade); every other
 * state change one event. Layouts: docs/programs.md "Events"; decoders: programs/trading/client.py. */
#ifndef TRADING_EVENTS_H
#define TRADING_EVENTS_H

#include <gtx_sol.h>

#include "state.h"

#define TRADING_EVENT_VERSION 1u

GTX_EVENT_TAG(MarketInitialized, 0xf3, 0xf4, 0xf9, 0xb9, 0xeb, 0x82, 0x3d, 0xe6);
GTX_EVENT_TAG(MarketUpdated, 0xc3, 0x16, 0xa2, 0xe4, 0xa6, 0x13, 0xc9, 0xf8);
GTX_EVENT_TAG(OrderCreated, 0xf8, 0x98, 0x5b, 0x2b, 0x66, 0x99, 0xd6, 0x42);
GTX_EVENT_TAG(OrderFilled, 0xf4, 0x79, 0x13, 0x80, 0xbf, 0x2a, 0x78, 0xba);
GTX_EVENT_TAG(TradeExecuted, 0xe5, 0x24, 0x3f, 0x6d, 0x2e, 0xd7, 0x04, 0x95);
GTX_EVENT_TAG(OrderCancelled, 0x22, 0xb5, 0xaf, 0x7f, 0x37, 0xdb, 0x81, 0x03);
GTX_EVENT_TAG(OrderExpired, 0x9d, 0x43, 0xf9, 0x50, 0x08, 0x94, 0xb9, 0x58);
GTX_EVENT_TAG(OrderClosed, 0x17, 0x9f, 0xde, 0x4b, 0x8a, 0xe2, 0xb9, 0x2b);

typedef struct __attribute__((packed)) {
  GtxEventHeader header;
  SolPubkey market;
  SolPubkey authority;
  SolPubkey grid_mint;
  SolPubkey thbc_mint;
  SolPubkey fee_account;
  uint16_t fee_bps;
  uint8_t grid_decimals;
  uint8_t thbc_decimals;
} MarketInitializedEvent;
_Static_assert(sizeof(MarketInitializedEvent) == 173, "MarketInitialized layout");

typedef struct __attribute__((packed)) {
  GtxEventHeader header;
  SolPubkey market;
  SolPubkey authority;
  SolPubkey previous_fee_account;
  SolPubkey fee_account;
  uint16_t previous_fee_bps;
  uint16_t fee_bps; /* for orders created from now on */
} MarketUpdatedEvent;
_Static_assert(sizeof(MarketUpdatedEvent) == 141, "MarketUpdated layout");

/* CreateOrder: `amount` GRID moved from seller_grid into the vault; the fee terms of every fill. */
typedef struct __attribute__((packed)) {
  GtxEventHeader header;
  SolPubkey order;
  SolPubkey market;
  SolPubkey seller;
  SolPubkey vault;
  SolPubkey seller_grid;
  uint64_t order_id;
  uint64_t amount;
  uint64_t price;
  int64_t expires_at;
  int64_t created_at;
  uint16_t fee_bps;
  uint16_t max_fee_bps;
} OrderCreatedEvent;
_Static_assert(sizeof(OrderCreatedEvent) == 213, "OrderCreated layout");

/* Buy, the order's side: its state after the fill. */
typedef struct __attribute__((packed)) {
  GtxEventHeader header;
  SolPubkey order;
  SolPubkey seller;
  SolPubkey buyer;
  uint64_t amount;
  uint64_t cost;
  uint64_t fee;
  uint64_t remaining;
  uint64_t proceeds; /* the seller's total so far, after fees */
  uint8_t state;     /* PartiallyFilled or Filled */
} OrderFilledEvent;
_Static_assert(sizeof(OrderFilledEvent) == 146, "OrderFilled layout");

/* Buy, the trade: GRID vault -> grid_recipient's account (grid_delivered: amount, plus on the last fill
 * anything sent into the vault from outside), THBC buyer -> seller (cost - fee) and -> fee_account (fee). */
typedef struct __attribute__((packed)) {
  GtxEventHeader header;
  SolPubkey order;
  SolPubkey seller;
  SolPubkey buyer;
  SolPubkey grid_recipient; /* holder of the GRID account the energy went to */
  SolPubkey fee_account;
  uint64_t amount;
  uint64_t grid_delivered;
  uint64_t price;
  uint64_t cost;
  uint64_t fee;
  int64_t timestamp;
} TradeExecutedEvent;
_Static_assert(sizeof(TradeExecutedEvent) == 217, "TradeExecuted layout");

/* CancelOrder / ExpireOrder: the vault's whole balance (`refunded`) back to seller_grid, vault closed. */
typedef struct __attribute__((packed)) {
  GtxEventHeader header;
  SolPubkey order;
  SolPubkey seller;
  SolPubkey seller_grid;
  uint64_t refunded;
  uint64_t remaining; /* the order's unsold amount */
  int64_t timestamp;
} OrderEndedEvent;
_Static_assert(sizeof(OrderEndedEvent) == 129, "OrderCancelled / OrderExpired layout");

/* CloseOrder: the finished order's account closed, its lamports to the seller. */
typedef struct __attribute__((packed)) {
  GtxEventHeader header;
  SolPubkey order;
  SolPubkey seller;
  uint8_t state; /* Filled, Cancelled or Expired */
  uint64_t lamports;
} OrderClosedEvent;
_Static_assert(sizeof(OrderClosedEvent) == 82, "OrderClosed layout");

#endif
