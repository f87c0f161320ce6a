"""Ed25519 arithmetic in plain Python (RFC 8032, section 5.1), slow and only for tests: it builds the
signatures no honest signer makes — small-order and mixed-order keys, an identity R, non-canonical
encodings and scalars — to compare verifiers on them. Never used to verify anything in production."""

from __future__ import annotations

import hashlib

__all__ = [
    "IDENTITY",
    "B",
    "L",
    "P",
    "Point",
    "add",
    "compress",
    "decompress",
    "mul",
    "scalar_from_seed",
    "sign_with_scalar",
    "small_order_points",
]

P = 2**255 - 19
L = 2**252 + 27742317777372353535851937790883648493
_D = -121665 * pow(121666, P - 2, P) % P
_SQRT_M1 = pow(2, (P - 1) // 4, P)

Point = tuple[int, int, int, int]  # extended coordinates X, Y, Z, T
IDENTITY: Point = (0, 1, 1, 0)


def add(p: Point, q: Point) -> Point:
    a = (p[1] - p[0]) * (q[1] - q[0]) % P
    b = (p[1] + p[0]) * (q[1] + q[0]) % P
    c = 2 * p[3] * q[3] * _D % P
    d = 2 * p[2] * q[2] % P
    e, f, g, h = b - a, d - c, d + c, b + a
    return (e * f % P, g * h % P, f * g % P, e * h % P)


def mul(s: int, p: Point) -> Point:
    q = IDENTITY
    while s > 0:
        if s & 1:
            q = add(q, p)
        p = add(p, p)
        s >>= 1
    return q


def _recover_x(y: int, sign: int) -> int | None:
    if y >= P:
        return None
    x2 = (y * y - 1) * pow(_D * y * y + 1, P - 2, P) % P
    if x2 == 0:
        return None if sign else 0
    x = pow(x2, (P + 3) // 8, P)
    if (x * x - x2) % P:
        x = x * _SQRT_M1 % P
    if (x * x - x2) % P:
        return None
    if (x & 1) != sign:
        x = P - x
    return x


def decompress(s: bytes) -> Point | None:
    """Canonical decoding only (y < p, no negative zero), as RFC 8032 requires."""
    y = int.from_bytes(s, "little")
    sign, y = y >> 255, y & ((1 << 255) - 1)
    x = _recover_x(y, sign)
    return None if x is None else (x, y, 1, x * y % P)


def compress(p: Point) -> bytes:
    zinv = pow(p[2], P - 2, P)
    x, y = p[0] * zinv % P, p[1] * zinv % P
    return int.to_bytes(y | ((x & 1) << 255), 32, "little")


def equal(p: Point, q: Point) -> bool:
    return (p[0] * q[2] - q[0] * p[2]) % P == 0 and (p[1] * q[2] - q[1] * p[2]) % P == 0


B: Point = (lambda y: (_recover_x(y, 0) or 0, y, 1, (_recover_x(y, 0) or 0) * y % P))(4 * pow(5, P - 2, P) % P)


def small_order_points() -> list[Point]:
    """The eight points of order dividing 8 (the torsion subgroup), identity first."""
    y = 2
    while True:
        q = decompress(int.to_bytes(y, 32, "little"))
        y += 1
        if q is None:
            continue
        t = mul(L, q)  # the torsion part of q
        if not equal(mul(4, t), IDENTITY):  # order 8: generates the subgroup
            out, acc = [], IDENTITY
            for _ in range(8):
                out.append(acc)
                acc = add(acc, t)
            return out


def _h(*parts: bytes) -> int:
    return int.from_bytes(hashlib.sha512(b"".join(parts)).digest(), "little")


def scalar_from_seed(seed: bytes) -> tuple[int, bytes]:
    """(secret scalar a, nonce prefix) as RFC 8032 derives them from a 32-byte seed."""
    h = hashlib.sha512(seed).digest()
    a = int.from_bytes(h[:32], "little")
    a &= (1 << 254) - 8
    a |= 1 << 254
    return a, h[32:]


def challenge(r: bytes, a: bytes, message: bytes) -> int:
    return _h(r, a, message) % L


def sign_with_scalar(a: int, prefix: bytes, public: bytes, message: bytes) -> bytes:
    """An RFC 8032 signature by scalar ``a`` under the given public key bytes (which may be any
    encoding: that is the point of this function)."""
    r = _h(prefix, message) % L
    r_enc = compress(mul(r, B))
    s = (r + challenge(r_enc, public, message) * a) % L
    return r_enc + int.to_bytes(s, 32, "little")


def _decompress_lenient(s: bytes) -> Point | None:
    """As ed25519-dalek decodes points: y taken modulo p, a negative zero allowed."""
    y = int.from_bytes(s, "little")
    sign, y = y >> 255, (y & ((1 << 255) - 1)) % P
    x = _recover_x(y, 0)
    if x is None:
        return None
    if sign:
        x = (P - x) % P
    return (x, y, 1, x * y % P)


def verify_plain(public: bytes, message: bytes, signature: bytes) -> bool:
    """The plain cofactorless check (ed25519-dalek's non-strict ``verify``): S canonical, then
    [S]B - [k]A must encode to R. Small-order keys and R pass it; verify_strict refuses them."""
    a = _decompress_lenient(public)
    s = int.from_bytes(signature[32:], "little")
    if a is None or s >= L:
        return False
    k = challenge(signature[:32], public, message)
    neg_a = (-a[0] % P, a[1], a[2], -a[3] % P)
    return compress(add(mul(s, B), mul(k, neg_a))) == signature[:32]
