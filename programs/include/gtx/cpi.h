/* gtx/cpi.h: cross-program invocation with the C ABI of sol_invoke_signed_c.
 *
 * Rules the runtime enforces: every SolAccountInfo passed must come from gtx_deserialize (its pointers
 * point into the input buffer); the callee's program account must be one of this instruction's accounts;
 * a PDA "signs" when one SolSignerSeeds (seeds + bump) derives its address from the calling program. */
#ifndef GTX_CPI_H
#define GTX_CPI_H

#include "entrypoint.h"
#include "types.h"

#define GTX_MAX_SEEDS 16u
#define GTX_MAX_SEED_LEN 32u

/* Field order fixed by the runtime: pubkey, is_writable, is_signer. */
typedef struct {
  SolPubkey *pubkey;
  bool is_writable;
  bool is_signer;
} SolAccountMeta;

typedef struct {
  SolPubkey *program_id;
  SolAccountMeta *accounts;
  uint64_t account_len;
  uint8_t *data;
  uint64_t data_len;
} SolInstruction;

typedef struct {
  const uint8_t *addr;
  uint64_t len;
} SolSignerSeed;

/* The seeds of one PDA signer, bump included (as invoke_signed wants them). */
typedef struct {
  const SolSignerSeed *addr;
  uint64_t len;
} SolSignerSeeds;

uint64_t sol_invoke_signed_c(const SolInstruction *instruction, const SolAccountInfo *account_infos,
                             uint64_t account_infos_len, const SolSignerSeeds *signers_seeds,
                             uint64_t signers_seeds_len);
/* Non-zero when the seeds give a point on the curve (not a valid PDA) or are too many / too long. */
uint64_t sol_create_program_address(const SolSignerSeed *seeds, uint64_t seeds_len,
                                    const SolPubkey *program_id, SolPubkey *address);
/* Costs ~1,500 CU per rejected bump: store the bump and use sol_create_program_address on chain. */
uint64_t sol_try_find_program_address(const SolSignerSeed *seeds, uint64_t seeds_len,
                                      const SolPubkey *program_id, SolPubkey *address, uint8_t *bump);

static inline uint64_t gtx_invoke(const SolInstruction *ix, const SolAccountInfo *infos, uint64_t n) {
  return sol_invoke_signed_c(ix, infos, n, (const SolSignerSeeds *)0, 0);
}

static inline uint64_t gtx_invoke_signed(const SolInstruction *ix, const SolAccountInfo *infos, uint64_t n,
                                         const SolSignerSeeds *signers, uint64_t n_signers) {
  return sol_invoke_signed_c(ix, infos, n, signers, n_signers);
}

/* The PDA for `seeds` (without bump) followed by `bump`. Returns ERROR_INVALID_SEEDS if the combination
 * is not a valid program address or there are more than GTX_MAX_SEEDS - 1 seeds. */
static inline uint64_t gtx_create_program_address(const SolSignerSeeds *seeds, uint8_t bump,
                                                  const SolPubkey *program_id, SolPubkey *out) {
  SolSignerSeed all[GTX_MAX_SEEDS];
  if (seeds->len >= GTX_MAX_SEEDS)
    return ERROR_MAX_SEED_LENGTH_EXCEEDED;
  for (uint64_t i = 0; i < seeds->len; i++)
    all[i] = seeds->addr[i];
  all[seeds->len].addr = &bump;
  all[seeds->len].len = 1;
  if (sol_create_program_address(all, seeds->len + 1, program_id, out) != 0)
    return ERROR_INVALID_SEEDS;
  return SUCCESS;
}

#endif
