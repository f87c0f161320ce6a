/* gtx/upgradeable.h: "only the program's upgrade authority may do this" (one-time configuration).
 *
 * A config PDA that anyone may create first can be front-run: whoever initialises it first picks the
 * trust roots (the registry program, the governance key, the GRID mint). Tying initialisation to the
 * upgrade authority adds no new trust (that key can replace the code anyway) and closes the race.
 *
 * ProgramData account of a program deployed with the BPF Upgradeable Loader: address = PDA of
 * [program_id] under the loader; data = u32 tag (3 = ProgramData), u64 slot, u8 Option tag,
 * authority[32], then the ELF. A program whose authority is None (immutable, or loaded by LiteSVM's
 * add_program) has no one who may initialise it.
 *
 *   gtx_expect_upgrade_authority(programdata, signer, program_id)
 *       ERROR_MISSING_REQUIRED_SIGNATURES  signer did not sign
 *       ERROR_INVALID_ACCOUNT_OWNER        programdata not owned by the upgradeable loader
 *       ERROR_INVALID_SEEDS                programdata is not this program's ProgramData address
 *       ERROR_INVALID_ACCOUNT_DATA         not a ProgramData account
 *       ERROR_INCORRECT_AUTHORITY          no upgrade authority, or another one than signer */
#ifndef GTX_UPGRADEABLE_H
#define GTX_UPGRADEABLE_H

#include "bytes.h"
#include "checks.h"
#include "cpi.h"

/* BPFLoaderUpgradeab1e11111111111111111111111 */
static const SolPubkey GTX_BPF_LOADER_UPGRADEABLE_ID = {{
    0x02, 0xa8, 0xf6, 0x91, 0x4e, 0x88, 0xa1, 0xb0, 0xe2, 0x10, 0x15, 0x3e, 0xf7, 0x63, 0xae, 0x2b,
    0x00, 0xc2, 0xb9, 0x3d, 0x16, 0xc1, 0x24, 0xd2, 0xc0, 0x53, 0x7a, 0x10, 0x04, 0x80, 0x00, 0x00}};

#define GTX_PROGRAMDATA_TAG 3u
#define GTX_PROGRAMDATA_AUTHORITY_OFFSET 13u
#define GTX_PROGRAMDATA_METADATA_LEN 45u

static inline uint64_t gtx_expect_upgrade_authority(const SolAccountInfo *programdata, const SolAccountInfo *signer,
                                                    const SolPubkey *program_id) {
  GTX_TRY(expect_signer(signer));
  GTX_TRY(expect_owner(programdata, &GTX_BPF_LOADER_UPGRADEABLE_ID));
  /* The bump is not known here; a one-time instruction can afford the search. */
  SolSignerSeed seed = {program_id->x, GTX_PUBKEY_LEN};
  SolPubkey expected;
  uint8_t bump;
  if (sol_try_find_program_address(&seed, 1, &GTX_BPF_LOADER_UPGRADEABLE_ID, &expected, &bump) != 0 ||
      !gtx_pubkey_eq(&expected, programdata->key)) {
    GTX_LOG_KEY("not this program's ProgramData account:", programdata->key);
    return ERROR_INVALID_SEEDS;
  }
  const uint8_t *d = programdata->data;
  if (programdata->data_len < GTX_PROGRAMDATA_METADATA_LEN || gtx_load_u32_le(d) != GTX_PROGRAMDATA_TAG) {
    GTX_LOG_KEY("not a ProgramData account:", programdata->key);
    return ERROR_INVALID_ACCOUNT_DATA;
  }
  if (d[GTX_PROGRAMDATA_AUTHORITY_OFFSET - 1] != 1 ||
      !gtx_memeq(d + GTX_PROGRAMDATA_AUTHORITY_OFFSET, signer->key, GTX_PUBKEY_LEN)) {
    GTX_LOG_KEY("signer is not the program's upgrade authority:", signer->key);
    return ERROR_INCORRECT_AUTHORITY;
  }
  return SUCCESS;
}

#endif
