/* Events, each one sol_log_data field ("Program data: <base64>") with a fixed little-endian layout that
 * starts [0] event discriminator, [1] version; decoded by programs/trading/client.py decode_events.
 *
 * TradeExecuted (1), 146 bytes: [2..34] order, [34..66] seller, [66..98] buyer, [98..106] amount u64
 *   (GRID base units), [106..114] price u64, [114..122] cost u64 (THBC paid by the buyer), [122..130]
 *   fee u64 (of the cost, to the fee account), [130..138] remaining u64, [138..146] timestamp i64.
 * OrderCreated (2) / OrderCancelled (3) / OrderExpired (4), 90 bytes: [2..34] order, [34..66] seller,
 *   [66..74] amount u64 (offered, or returned from escrow), [74..82] price u64, [82..90] timestamp i64. */
#ifndef TRADING_EVENTS_H
#define TRADING_EVENTS_H

#include <gtx_sol.h>

#include "state.h"

#define EVENT_VERSION 1u
#define EVENT_TRADE_EXECUTED 1u
#define EVENT_ORDER_CREATED 2u
#define EVENT_ORDER_CANCELLED 3u
#define EVENT_ORDER_EXPIRED 4u
#define TRADE_EVENT_LEN 146u
#define ORDER_EVENT_LEN 90u

typedef struct {
  const SolPubkey *order;
  const SolPubkey *seller;
  const SolPubkey *buyer;
  uint64_t amount, price, cost, fee, remaining;
  int64_t timestamp;
} TradeExecuted;

static inline void emit_trade_executed(const TradeExecuted *t) {
  uint8_t e[TRADE_EVENT_LEN];
  e[0] = EVENT_TRADE_EXECUTED;
  e[1] = EVENT_VERSION;
  gtx_memcpy(e + 2, t->order, GTX_PUBKEY_LEN);
  gtx_memcpy(e + 34, t->seller, GTX_PUBKEY_LEN);
  gtx_memcpy(e + 66, t->buyer, GTX_PUBKEY_LEN);
  gtx_store_u64_le(e + 98, t->amount);
  gtx_store_u64_le(e + 106, t->price);
  gtx_store_u64_le(e + 114, t->cost);
  gtx_store_u64_le(e + 122, t->fee);
  gtx_store_u64_le(e + 130, t->remaining);
  gtx_store_u64_le(e + 138, (uint64_t)t->timestamp);
  SolBytes field = {e, sizeof(e)};
  sol_log_data(&field, 1);
}

static inline void emit_order_event(uint8_t kind, const SolPubkey *order, const Order *o, uint64_t amount,
                                    int64_t timestamp) {
  uint8_t e[ORDER_EVENT_LEN];
  e[0] = kind;
  e[1] = EVENT_VERSION;
  gtx_memcpy(e + 2, order, GTX_PUBKEY_LEN);
  gtx_memcpy(e + 34, &o->seller, GTX_PUBKEY_LEN);
  gtx_store_u64_le(e + 66, amount);
  gtx_store_u64_le(e + 74, o->price);
  gtx_store_u64_le(e + 82, (uint64_t)timestamp);
  SolBytes field = {e, sizeof(e)};
  sol_log_data(&field, 1);
}

#endif
