/* gtx/pda.h: program-derived addresses checked with the sha256 and curve syscalls, ~10x cheaper than the
 * PDA syscalls (measured by bench/bench_pda_check.py, see docs/programs.md "Canonical addresses").
 *
 * A PDA of `seeds` and `bump` under `program_id` is
 *     sha256(seed_1 || ... || seed_n || bump || program_id || "ProgramDerivedAddress")
 * provided that this hash is NOT a point of the Ed25519 curve (else no PDA exists for that bump).
 * find_program_address tries bumps 255, 254, ... and returns the first that gives a PDA: the CANONICAL
 * bump. Roughly half of all bumps give a PDA, so one seed set has ~128 valid addresses; a program that
 * accepted any of them would let one logical account (a meter id, an order id) exist many times.
 *
 *   gtx_pda_hash(seeds, bump, program_id, out)
 *       the hash above (sol_sha256: ~150 CU for our seed sets); no curve check.
 *   expect_pda(a, seeds, bump, program_id)  (checks.h)
 *       a->key == gtx_pda_hash(...) else ERROR_INVALID_SEEDS. For accounts this program created: the
 *       bump stored at creation was checked canonical then, so re-deriving with it compares against the
 *       canonical address. No curve check is needed to recognise an existing address: nobody holds the
 *       private key of a sha256 output, and only the program can sign for (create) a PDA.
 *   gtx_expect_canonical_pda(a, seeds, bump, program_id, non_canonical_error)
 *       before creating an account (and for accounts of another program that cannot be trusted to
 *       have checked): a is the PDA of seeds + bump (ERROR_INVALID_SEEDS otherwise: another address, or
 *       the hash is on the curve) AND every higher bump gives a point on the curve, i.e. `bump` is what
 *       find_program_address returns (`non_canonical_error`, the program's own NonCanonicalBump,
 *       otherwise). Cost ~480 CU for the address and ~340 CU per higher bump tried (sha256 +
 *       sol_curve_validate_point at 159 CU) — against 1,500 CU per bump for sol_create_program_address
 *       or sol_try_find_program_address.
 *   gtx_canonical_pda(seeds, bump, program_id, out, non_canonical_error)
 *       the same for an address no account is passed for (a PDA that only signs), written to *out.
 *
 * sol_curve_validate_point(GTX_CURVE25519_EDWARDS, p, _) returns 0 when the 32 bytes decompress to an
 * Edwards point — exactly the test create_program_address applies (bytes_are_curve_point). */
#ifndef GTX_PDA_H
#define GTX_PDA_H

#include "bytes.h"
#include "cpi.h"
#include "entrypoint.h"

#define GTX_CURVE25519_EDWARDS 0u
uint64_t sol_curve_validate_point(uint64_t curve_id, const uint8_t *point, uint8_t *result);

static const uint8_t GTX_PDA_MARKER[] = "ProgramDerivedAddress";
#define GTX_PDA_MARKER_LEN 21u

/* sha256(seeds || bump || program_id || marker). ERROR_MAX_SEED_LENGTH_EXCEEDED for too many seeds. */
static inline uint64_t gtx_pda_hash(const SolSignerSeeds *seeds, uint8_t bump, const SolPubkey *program_id,
                                    SolPubkey *out) {
  SolBytes parts[GTX_MAX_SEEDS + 2];
  if (seeds->len >= GTX_MAX_SEEDS)
    return ERROR_MAX_SEED_LENGTH_EXCEEDED;
  for (uint64_t i = 0; i < seeds->len; i++) {
    parts[i].addr = seeds->addr[i].addr;
    parts[i].len = seeds->addr[i].len;
  }
  uint64_t n = seeds->len;
  parts[n].addr = &bump;
  parts[n].len = 1;
  parts[n + 1].addr = program_id->x;
  parts[n + 1].len = GTX_PUBKEY_LEN;
  parts[n + 2].addr = GTX_PDA_MARKER;
  parts[n + 2].len = GTX_PDA_MARKER_LEN;
  if (sol_sha256(parts, n + 3, out->x) != 0)
    return ERROR_INVALID_SEEDS;
  return SUCCESS;
}

/* True when the 32 bytes are an Ed25519 point, i.e. NOT a program address. */
static inline bool gtx_on_curve(const SolPubkey *p) {
  uint8_t unused;
  return sol_curve_validate_point(GTX_CURVE25519_EDWARDS, p->x, &unused) == 0;
}

/* Every bump above `bump` gives a curve point (no program address): `bump` is the highest valid one. */
static inline uint64_t gtx_no_higher_bump(const SolSignerSeeds *seeds, uint8_t bump, const SolPubkey *program_id,
                                          uint64_t non_canonical_error) {
  SolPubkey h;
  for (uint64_t higher = (uint64_t)bump + 1; higher <= 255; higher++) {
    GTX_TRY(gtx_pda_hash(seeds, (uint8_t)higher, program_id, &h));
    if (!gtx_on_curve(&h)) {
      GTX_LOG("not the canonical bump: a higher bump gives a program address");
      sol_log_64_(bump, higher, 0, 0, 0);
      return non_canonical_error;
    }
  }
  return SUCCESS;
}

/* The program address at `bump` into *out, which must be the canonical bump. */
static inline uint64_t gtx_canonical_pda(const SolSignerSeeds *seeds, uint8_t bump, const SolPubkey *program_id,
                                         SolPubkey *out, uint64_t non_canonical_error) {
  GTX_TRY(gtx_pda_hash(seeds, bump, program_id, out));
  if (gtx_on_curve(out)) {
    GTX_LOG("the bump gives no program address");
    return ERROR_INVALID_SEEDS;
  }
  return gtx_no_higher_bump(seeds, bump, program_id, non_canonical_error);
}

static inline uint64_t gtx_expect_canonical_pda(const SolAccountInfo *a, const SolSignerSeeds *seeds, uint8_t bump,
                                                const SolPubkey *program_id, uint64_t non_canonical_error) {
  SolPubkey h;
  GTX_TRY(gtx_pda_hash(seeds, bump, program_id, &h));
  if (!gtx_pubkey_eq(&h, a->key) || gtx_on_curve(&h)) {
    GTX_LOG_KEY("account is not the program address of its seeds and bump:", a->key);
    return ERROR_INVALID_SEEDS;
  }
  uint64_t r = gtx_no_higher_bump(seeds, bump, program_id, non_canonical_error);
  if (r != SUCCESS)
    GTX_LOG_KEY("account is at a non-canonical bump:", a->key);
  return r;
}

#endif
