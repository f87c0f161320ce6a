"""Client of the trading program (mirror of programs/trading/src/instructions.h, state.h, events.h, error.h).

Each builder documents its accounts in order with [w] writable / [s] signer and its data byte ranges
(all integers little endian); docs/programs/trading.md has the same tables. Builders derive every PDA
themselves; keyword overrides (``order=``, ``vault=``, ...) exist so that tests can substitute accounts.

Amounts: GRID in base units (1 kWh = 10**9), THBC in base units (10**6 per baht); a price is THBC base
units per kWh. The cost of ``amount`` GRID is ``ceil(amount * price / 10**9)`` (rounded up, in the
seller's favour); the fee is ``ceil(cost * fee_bps / 10_000)`` (rounded up: no fill with a non-zero cost
is fee-free in a market with a fee) and comes out of the buyer's payment, so the buyer pays ``cost`` and
the seller receives ``cost - fee``. ``fee_bps`` is the order's own, fixed when it was created (at most
the ``max_fee_bps`` the seller signed); UpdateMarket changes it for later orders only.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

from solders.instruction import AccountMeta, Instruction
from solders.pubkey import Pubkey
from solders.system_program import ID as SYSTEM_PROGRAM_ID
from spl.token.constants import TOKEN_PROGRAM_ID

from programs.client.chain import TxResult
from programs.client.deploy import programdata_address
from programs.client.errors import ProgramErrors
from programs.client.events import I64, U8, U16, U64, Key, ProgramEvents, event

__all__ = [
    "EVENTS",
    "FEE_BPS_MAX",
    "GRID_PER_KWH",
    "MARKET_LEN",
    "ORDER_LEN",
    "TRADING_ERRORS",
    "Market",
    "MarketInitialized",
    "MarketUpdated",
    "Order",
    "OrderCancelled",
    "OrderClosed",
    "OrderCreated",
    "OrderExpired",
    "OrderFilled",
    "OrderState",
    "TradeExecuted",
    "TradingEvent",
    "buy",
    "cancel_order",
    "close_order",
    "create_order",
    "decode_events",
    "expire_order",
    "initialize_market",
    "market_address",
    "order_address",
    "trade_cost",
    "trade_fee",
    "update_market",
    "vault_address",
]

GRID_PER_KWH = 10**9
FEE_BPS_MAX = 10_000
U64_MAX = 2**64 - 1

MARKET_SEED, ORDER_SEED, VAULT_SEED = b"market", b"order", b"vault"
MARKET_LEN, ORDER_LEN = 135, 159
DISC_MARKET, DISC_ORDER, VERSION = 1, 2, 2

(IX_INITIALIZE_MARKET, IX_CREATE_ORDER, IX_BUY, IX_CANCEL_ORDER, IX_EXPIRE_ORDER, IX_CLOSE_ORDER,
 IX_UPDATE_MARKET) = range(7)

TRADING_ERRORS = ProgramErrors("trading", {
    1: "UnknownInstruction",
    2: "WrongAccountSize",
    3: "WrongAccountType",
    4: "FeeTooHigh",
    5: "WrongDecimals",
    6: "SameMint",
    7: "WrongMint",
    8: "WrongTokenOwner",
    9: "WrongFeeAccount",
    10: "WrongMarket",
    11: "WrongVault",
    12: "WrongSeller",
    13: "NotSeller",
    14: "SelfTrade",
    15: "ZeroAmount",
    16: "ZeroPrice",
    17: "ExpiryInPast",
    18: "OrderNotActive",
    19: "OrderExpired",
    20: "OrderNotExpired",
    21: "AmountExceedsRemaining",
    22: "InsufficientBalance",
    23: "CostOverflow",
    24: "OrderStillOpen",
    25: "NotMarketAuthority",
    26: "FeeAboveLimit",
    27: "NonCanonicalBump",
})


# --- arithmetic (the program's pricing.h, in Python integers) -------------------------------------------

def trade_cost(amount: int, price: int) -> int:
    """THBC base units for ``amount`` GRID base units at ``price`` THBC base units per kWh, rounded up."""
    return -(-amount * price // GRID_PER_KWH)


def trade_fee(cost: int, fee_bps: int) -> int:
    """The fee part of ``cost``, rounded up (a non-zero cost at a non-zero fee never pays 0)."""
    return -(-cost * fee_bps // FEE_BPS_MAX)


# --- PDAs ------------------------------------------------------------------------------------------------

def market_address(program_id: Pubkey) -> tuple[Pubkey, int]:
    return Pubkey.find_program_address([MARKET_SEED], program_id)


def order_address(program_id: Pubkey, seller: Pubkey, order_id: int) -> tuple[Pubkey, int]:
    return Pubkey.find_program_address([ORDER_SEED, bytes(seller), struct.pack("<Q", order_id)], program_id)


def vault_address(program_id: Pubkey, order: Pubkey) -> tuple[Pubkey, int]:
    return Pubkey.find_program_address([VAULT_SEED, bytes(order)], program_id)


# --- accounts --------------------------------------------------------------------------------------------

class OrderState(enum.IntEnum):
    ACTIVE = 1
    PARTIALLY_FILLED = 2
    FILLED = 3
    CANCELLED = 4
    EXPIRED = 5


def _check_header(data: bytes, kind: str, length: int, disc: int) -> None:
    if len(data) != length:
        raise ValueError(f"{kind} account is {len(data)} bytes, expected {length}")
    if data[0] != disc or data[1] != VERSION:
        raise ValueError(f"{kind} account has discriminator {data[0]} version {data[1]}, "
                         f"expected {disc} version {VERSION}")


@dataclass(frozen=True)
class Market:
    """Market PDA ["market"], 135 bytes: [0] disc 1, [1] version 2, [2] bump, [3] GRID decimals,
    [4] THBC decimals, [5..7] fee_bps u16, [7..39] authority, [39..71] GRID mint, [71..103] THBC mint,
    [103..135] fee account."""

    bump: int
    grid_decimals: int
    thbc_decimals: int
    fee_bps: int
    authority: Pubkey
    grid_mint: Pubkey
    thbc_mint: Pubkey
    fee_account: Pubkey

    @classmethod
    def decode(cls, data: bytes) -> Market:
        _check_header(data, "market", MARKET_LEN, DISC_MARKET)
        bump, gd, td, fee_bps, *keys = struct.unpack_from("<BBBH32s32s32s32s", data, 2)
        return cls(bump, gd, td, fee_bps, *(Pubkey.from_bytes(k) for k in keys))


@dataclass(frozen=True)
class Order:
    """Order PDA ["order", seller, order_id u64], 159 bytes: [0] disc 2, [1] version 2, [2] bump,
    [3] vault bump, [4] state, [5..37] market, [37..69] seller, [69..101] vault, [101..109] order_id,
    [109..117] amount, [117..125] remaining, [125..133] price, [133..141] expires_at i64,
    [141..149] created_at i64, [149..157] proceeds (THBC the seller received, after fees),
    [157..159] fee_bps u16 (the market's fee when the order was created; every fill pays it)."""

    bump: int
    vault_bump: int
    state: OrderState
    market: Pubkey
    seller: Pubkey
    vault: Pubkey
    order_id: int
    amount: int
    remaining: int
    price: int
    expires_at: int
    created_at: int
    proceeds: int
    fee_bps: int

    @classmethod
    def decode(cls, data: bytes) -> Order:
        _check_header(data, "order", ORDER_LEN, DISC_ORDER)
        bump, vault_bump, state, market, seller, vault, *numbers = struct.unpack_from("<BBB32s32s32sQQQQqqQH",
                                                                                     data, 2)
        return cls(bump, vault_bump, OrderState(state), Pubkey.from_bytes(market), Pubkey.from_bytes(seller),
                   Pubkey.from_bytes(vault), *numbers)


# --- events (programs/trading/src/events.h; docs/programs.md "Events") ----------------------------------

@event("MarketInitialized")
@dataclass(frozen=True)
class MarketInitialized:
    market: Key
    authority: Key
    grid_mint: Key
    thbc_mint: Key
    fee_account: Key
    fee_bps: U16
    grid_decimals: U8
    thbc_decimals: U8


@event("MarketUpdated")
@dataclass(frozen=True)
class MarketUpdated:
    """UpdateMarket: ``fee_bps`` for orders created from now on; ``fee_account`` for every later Buy."""

    market: Key
    authority: Key
    previous_fee_account: Key
    fee_account: Key
    previous_fee_bps: U16
    fee_bps: U16


@event("OrderCreated")
@dataclass(frozen=True)
class OrderCreated:
    """CreateOrder: ``amount`` GRID moved from ``seller_grid`` into ``vault``; every fill pays ``fee_bps``."""

    order: Key
    market: Key
    seller: Key
    vault: Key
    seller_grid: Key
    order_id: U64
    amount: U64
    price: U64
    expires_at: I64
    created_at: I64
    fee_bps: U16
    max_fee_bps: U16


@event("OrderFilled")
@dataclass(frozen=True)
class OrderFilled:
    """Buy, the order's side: its state after the fill (PartiallyFilled or Filled)."""

    order: Key
    seller: Key
    buyer: Key
    amount: U64
    cost: U64
    fee: U64
    remaining: U64
    proceeds: U64  # the seller's total so far, after fees
    state: U8


@event("TradeExecuted")
@dataclass(frozen=True)
class TradeExecuted:
    """Buy, the trade: GRID from the vault to ``grid_recipient``'s account (``grid_delivered``: ``amount``,
    plus on the last fill anything sent into the vault from outside), THBC from the buyer: ``cost - fee``
    to the seller, ``fee`` to ``fee_account``."""

    order: Key
    seller: Key
    buyer: Key
    grid_recipient: Key
    fee_account: Key
    amount: U64
    grid_delivered: U64
    price: U64
    cost: U64
    fee: U64
    timestamp: I64


@event("OrderCancelled")
@dataclass(frozen=True)
class OrderCancelled:
    """CancelOrder: the vault's whole balance (``refunded``) back to ``seller_grid``, vault closed."""

    order: Key
    seller: Key
    seller_grid: Key
    refunded: U64
    remaining: U64
    timestamp: I64


@event("OrderExpired")
@dataclass(frozen=True)
class OrderExpired:
    """ExpireOrder: as OrderCancelled, sent by anyone once ``expires_at`` has passed."""

    order: Key
    seller: Key
    seller_grid: Key
    refunded: U64
    remaining: U64
    timestamp: I64


@event("OrderClosed")
@dataclass(frozen=True)
class OrderClosed:
    """CloseOrder: the finished order's account closed, ``lamports`` to the seller."""

    order: Key
    seller: Key
    state: U8
    lamports: U64


TradingEvent = (MarketInitialized | MarketUpdated | OrderCreated | OrderFilled | TradeExecuted | OrderCancelled
                | OrderExpired | OrderClosed)
EVENTS = ProgramEvents("trading", [MarketInitialized, MarketUpdated, OrderCreated, OrderFilled, TradeExecuted,
                                   OrderCancelled, OrderExpired, OrderClosed])


def decode_events(result: TxResult, program_id: Pubkey) -> list[TradingEvent]:
    """The trading program's events in a transaction, in order (EventsTruncated if the logs were cut off)."""
    return [e.event for e in result.decode_events({program_id: EVENTS}).complete()]


# --- instructions ----------------------------------------------------------------------------------------

def initialize_market(program_id: Pubkey, authority: Pubkey, grid_mint: Pubkey, thbc_mint: Pubkey,
                      fee_account: Pubkey, fee_bps: int, *, market: Pubkey | None = None,
                      bump: int | None = None, programdata: Pubkey | None = None) -> Instruction:
    """0 InitializeMarket (only the program's upgrade authority, who becomes the market authority).

    accounts: 0 authority [w, s] (pays rent), 1 market [w] (PDA ["market"]), 2 GRID mint, 3 THBC mint,
              4 fee account (THBC token account), 5 the program's ProgramData account, 6 System program
    data:     [0] 0, [1..3] fee_bps u16, [3] market bump
    """
    derived, derived_bump = market_address(program_id)
    return Instruction(
        program_id,
        struct.pack("<BHB", IX_INITIALIZE_MARKET, fee_bps, derived_bump if bump is None else bump),
        [
            AccountMeta(authority, True, True),
            AccountMeta(market or derived, False, True),
            AccountMeta(grid_mint, False, False),
            AccountMeta(thbc_mint, False, False),
            AccountMeta(fee_account, False, False),
            AccountMeta(programdata or programdata_address(program_id), False, False),
            AccountMeta(SYSTEM_PROGRAM_ID, False, False),
        ],
    )


def update_market(program_id: Pubkey, authority: Pubkey, fee_account: Pubkey, fee_bps: int, *,
                  market: Pubkey | None = None, authority_signs: bool = True) -> Instruction:
    """6 UpdateMarket (market authority only): new fee for orders created from now on, new fee account
    for every later buy.

    accounts: 0 authority [s], 1 market [w], 2 fee account (THBC token account)
    data:     [0] 6, [1..3] fee_bps u16
    """
    return Instruction(
        program_id,
        struct.pack("<BH", IX_UPDATE_MARKET, fee_bps),
        [
            AccountMeta(authority, authority_signs, False),
            AccountMeta(market or market_address(program_id)[0], False, True),
            AccountMeta(fee_account, False, False),
        ],
    )


def create_order(program_id: Pubkey, seller: Pubkey, seller_grid: Pubkey, grid_mint: Pubkey, order_id: int,
                 amount: int, price: int, expires_at: int, *, max_fee_bps: int, market: Pubkey | None = None,
                 order: Pubkey | None = None, order_bump: int | None = None, vault: Pubkey | None = None,
                 vault_bump: int | None = None) -> Instruction:
    """1 CreateOrder: order PDA + escrow vault created, ``amount`` GRID moved into the vault.

    accounts: 0 seller [w, s] (pays rent, signs the GRID transfer), 1 market, 2 order [w]
              (PDA ["order", seller, order_id u64]), 3 vault [w] (PDA ["vault", order]), 4 seller's GRID
              account [w], 5 GRID mint, 6 Token program, 7 System program
    data:     [0] 1, [1..9] order_id u64, [9..17] amount u64, [17..25] price u64 (THBC base units per
              kWh), [25..33] expires_at i64 (unix seconds), [33] order bump, [34] vault bump (canonical),
              [35..37] max_fee_bps u16

    ``max_fee_bps`` is the highest market fee the seller agrees to (refused with FeeAboveLimit if the
    market's is higher when the transaction lands); the order keeps the market's fee of that moment.
    """
    derived_order, derived_order_bump = order_address(program_id, seller, order_id)
    order = order or derived_order
    derived_vault, derived_vault_bump = vault_address(program_id, order)
    return Instruction(
        program_id,
        struct.pack("<BQQQqBBH", IX_CREATE_ORDER, order_id, amount, price, expires_at,
                    derived_order_bump if order_bump is None else order_bump,
                    derived_vault_bump if vault_bump is None else vault_bump, max_fee_bps),
        [
            AccountMeta(seller, True, True),
            AccountMeta(market or market_address(program_id)[0], False, False),
            AccountMeta(order, False, True),
            AccountMeta(vault or derived_vault, False, True),
            AccountMeta(seller_grid, False, True),
            AccountMeta(grid_mint, False, False),
            AccountMeta(TOKEN_PROGRAM_ID, False, False),
            AccountMeta(SYSTEM_PROGRAM_ID, False, False),
        ],
    )


def buy(program_id: Pubkey, buyer: Pubkey, seller: Pubkey, order_id: int, amount: int, *, buyer_grid: Pubkey,
        buyer_thbc: Pubkey, seller_thbc: Pubkey, fee_account: Pubkey, market: Pubkey | None = None,
        order: Pubkey | None = None, vault: Pubkey | None = None, buyer_signs: bool = True) -> Instruction:
    """2 Buy ``amount`` GRID base units of an order: GRID escrow -> buyer, THBC buyer -> seller + fee.

    accounts: 0 buyer [s], 1 market, 2 order [w], 3 vault [w], 4 buyer's GRID account [w],
              5 buyer's THBC account [w], 6 seller's THBC account [w], 7 market fee account [w],
              8 seller [w] (gets the vault's rent back when the order fills), 9 Token program
    data:     [0] 2, [1..9] amount u64
    """
    order = order or order_address(program_id, seller, order_id)[0]
    return Instruction(
        program_id,
        struct.pack("<BQ", IX_BUY, amount),
        [
            AccountMeta(buyer, buyer_signs, False),
            AccountMeta(market or market_address(program_id)[0], False, False),
            AccountMeta(order, False, True),
            AccountMeta(vault or vault_address(program_id, order)[0], False, True),
            AccountMeta(buyer_grid, False, True),
            AccountMeta(buyer_thbc, False, True),
            AccountMeta(seller_thbc, False, True),
            AccountMeta(fee_account, False, True),
            AccountMeta(seller, False, True),
            AccountMeta(TOKEN_PROGRAM_ID, False, False),
        ],
    )


def cancel_order(program_id: Pubkey, seller: Pubkey, order_id: int, seller_grid: Pubkey, *,
                 order: Pubkey | None = None, vault: Pubkey | None = None,
                 seller_signs: bool = True) -> Instruction:
    """3 CancelOrder (seller only): unsold escrow back to the seller, vault closed (rent to the seller).

    accounts: 0 seller [w, s], 1 order [w], 2 vault [w], 3 seller's GRID account [w], 4 Token program
    data:     [0] 3
    """
    order = order or order_address(program_id, seller, order_id)[0]
    return Instruction(
        program_id,
        bytes([IX_CANCEL_ORDER]),
        [
            AccountMeta(seller, seller_signs, True),
            AccountMeta(order, False, True),
            AccountMeta(vault or vault_address(program_id, order)[0], False, True),
            AccountMeta(seller_grid, False, True),
            AccountMeta(TOKEN_PROGRAM_ID, False, False),
        ],
    )


def expire_order(program_id: Pubkey, seller: Pubkey, order_id: int, seller_grid: Pubkey, *,
                 order: Pubkey | None = None, vault: Pubkey | None = None) -> Instruction:
    """4 ExpireOrder (anyone, once expired): unsold escrow back to the seller, vault closed.

    accounts: 0 order [w], 1 vault [w], 2 seller's GRID account [w], 3 seller [w], 4 Token program
    data:     [0] 4
    """
    order = order or order_address(program_id, seller, order_id)[0]
    return Instruction(
        program_id,
        bytes([IX_EXPIRE_ORDER]),
        [
            AccountMeta(order, False, True),
            AccountMeta(vault or vault_address(program_id, order)[0], False, True),
            AccountMeta(seller_grid, False, True),
            AccountMeta(seller, False, True),
            AccountMeta(TOKEN_PROGRAM_ID, False, False),
        ],
    )


def close_order(program_id: Pubkey, seller: Pubkey, order_id: int, *, order: Pubkey | None = None) -> Instruction:
    """5 CloseOrder (seller only, finished orders): the order account's rent back to the seller.

    accounts: 0 seller [w, s], 1 order [w]
    data:     [0] 5
    """
    return Instruction(
        program_id,
        bytes([IX_CLOSE_ORDER]),
        [
            AccountMeta(seller, True, True),
            AccountMeta(order or order_address(program_id, seller, order_id)[0], False, True),
        ],
    )
