/* Trade arithmetic, exact and overflow-checked without 128-bit integers (BPF has no __multi3/__udivti3).
 *
 *   cost = ceil(amount * price / 10^9)   THBC base units for `amount` GRID base units at `price` THBC
 *                                         base units per kWh, rounded UP (in the seller's favour: a buyer
 *                                         can never take energy for free by splitting a fill into dust)
 *   fee  = ceil(cost * fee_bps / 10^4)   part of the cost that goes to the fee account, rounded UP: a
 *                                         fill with a non-zero cost in a market with a non-zero fee never
 *                                         pays a zero fee, so splitting a purchase into small fills cannot
 *                                         avoid it (a split pays at least the single fill's fee)
 *
 * Splitting amount = q*10^9 + r and price = pq*10^9 + pr gives
 *   amount * price / 10^9 = q*price + r*pq + r*pr / 10^9
 * where r*pr < 10^18 fits u64 and every term is non-negative, so the sum fits u64 exactly when no
 * checked step overflows. */
#ifndef TRADING_PRICING_H
#define TRADING_PRICING_H

#include <gtx_sol.h>

#include "error.h"
#include "state.h"

static inline uint64_t trade_cost(uint64_t amount, uint64_t price, uint64_t *out) {
  uint64_t q = amount / GRID_PER_KWH, r = amount % GRID_PER_KWH;
  uint64_t pq = price / GRID_PER_KWH, pr = price % GRID_PER_KWH;
  uint64_t whole, cross, sum;
  uint64_t small = r * pr; /* < 10^18 */
  if (gtx_mul_u64(q, price, &whole) != SUCCESS || gtx_mul_u64(r, pq, &cross) != SUCCESS ||
      gtx_add_u64(whole, cross, &sum) != SUCCESS || gtx_add_u64(sum, small / GRID_PER_KWH, &sum) != SUCCESS ||
      gtx_add_u64(sum, small % GRID_PER_KWH != 0 ? 1 : 0, &sum) != SUCCESS) {
    GTX_LOG("cost of amount x price exceeds u64");
    sol_log_64_(amount, price, 0, 0, 0);
    return GTX_CUSTOM_ERROR(TRADING_ERROR_COST_OVERFLOW);
  }
  *out = sum;
  return SUCCESS;
}

/* cost * fee_bps = (cost / 10^4) * fee_bps * 10^4 + (cost % 10^4) * fee_bps, so the ceiling of its tenth
 * thousandth is (cost / 10^4) * fee_bps + ceil((cost % 10^4) * fee_bps / 10^4). fee_bps <= 10_000, so the
 * first term is <= cost and the second < 10^8: no overflow, and fee <= cost. */
static inline uint64_t trade_fee(uint64_t cost, uint16_t fee_bps) {
  uint64_t part = (cost % FEE_BPS_MAX) * fee_bps;
  return (cost / FEE_BPS_MAX) * fee_bps + part / FEE_BPS_MAX + (part % FEE_BPS_MAX != 0 ? 1 : 0);
}

#endif
