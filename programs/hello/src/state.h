/* Account state of the hello program. */
#ifndef HELLO_STATE_H
#define HELLO_STATE_H

#include <gtx_sol.h>

#include "error.h"

/* Greeting: PDA of ["greeting", authority] and the bump stored inside. */
#define GREETING_SEED "greeting"
#define GREETING_VERSION 2u /* 2: created at the canonical bump only */
#define GREETING_LEN 50u

typedef struct __attribute__((packed)) {
  uint8_t version; /* 0 = uninitialised, GREETING_VERSION once created */
  uint8_t bump;
  SolPubkey authority;
  uint64_t count; /* number of Greet instructions */
  uint64_t total; /* sum of their amounts */
} Greeting;

_Static_assert(sizeof(Greeting) == GREETING_LEN, "Greeting layout is the documented 50 bytes");

/* The seeds of a greeting PDA, without the bump (see expect_pda). `parts` must outlive `out`. */
static inline void greeting_seeds(const SolPubkey *authority, SolSignerSeed parts[2], SolSignerSeeds *out) {
  parts[0].addr = (const uint8_t *)GREETING_SEED;
  parts[0].len = sizeof(GREETING_SEED) - 1;
  parts[1].addr = authority->x;
  parts[1].len = GTX_PUBKEY_LEN;
  out->addr = parts;
  out->len = 2;
}

/* Checked loader: owned by this program, the right size, initialised. */
static inline uint64_t greeting_load(const SolAccountInfo *a, const SolPubkey *program_id, Greeting **out) {
  GTX_TRY(expect_owner(a, program_id));
  if (a->data_len != GREETING_LEN) {
    GTX_LOG_KEY("greeting account has the wrong size:", a->key);
    return GTX_CUSTOM_ERROR(HELLO_ERROR_GREETING_WRONG_SIZE);
  }
  Greeting *g = (Greeting *)a->data;
  if (g->version != GREETING_VERSION) {
    GTX_LOG_KEY("greeting account is not initialised:", a->key);
    return ERROR_UNINITIALIZED_ACCOUNT;
  }
  *out = g;
  return SUCCESS;
}

#endif
