/* gtx_sol.h: everything a GridTokenX on-chain program includes (freestanding C, SBPF v0).
 *
 *   gtx/types.h          SolPubkey, SolBytes, SUCCESS / ERROR_* / GTX_CUSTOM_ERROR, GTX_TRY
 *   gtx/syscalls.h       sol_log_, sol_log_64_, sol_log_pubkey, sol_log_data, sol_mem*_, sol_sha256,
 *                        sol_get_clock_sysvar, sol_get_rent_sysvar, sol_set_return_data
 *   gtx/bytes.h          gtx_load/store_u16/u32/u64_le, gtx_add/sub/mul_u64, gtx_memcpy/memset/memeq,
 *                        gtx_pubkey_eq, weak memcpy/memset/memmove/memcmp, GTX_LOG, GTX_LOG_KEY
 *   gtx/entrypoint.h     SolAccountInfo, GtxInput, gtx_deserialize
 *   gtx/cpi.h            SolInstruction, SolAccountMeta, SolSignerSeed(s), sol_invoke_signed_c,
 *                        gtx_invoke(_signed), sol_create_program_address, gtx_create_program_address
 *   gtx/pda.h            gtx_pda_hash, gtx_expect_canonical_pda (sha256 + curve check, no PDA syscall)
 *   gtx/checks.h         expect_accounts/signer/writable/owner/key/program/pda
 *   gtx/ids.h            System program, Instructions sysvar, Ed25519 precompile ids
 *   gtx/system.h         gtx_create_account (CPI, PDA-signed), gtx_rent_minimum_balance
 *   gtx/introspection.h  Instructions sysvar reader, gtx_find_ed25519_verification
 *   gtx/events.h         GtxEventHeader, GTX_EVENT_TAG, gtx_event_header, gtx_emit (docs/programs.md "Events")
 *
 * Build: `gridtokenx programs build` (programs/toolchain/build.py); see docs/programs.md, "Toolchain". */
#ifndef GTX_SOL_H
#define GTX_SOL_H

#include "gtx/types.h"
#include "gtx/syscalls.h"
#include "gtx/bytes.h"
#include "gtx/entrypoint.h"
#include "gtx/cpi.h"
#include "gtx/pda.h"
#include "gtx/checks.h"
#include "gtx/ids.h"
#include "gtx/system.h"
#include "gtx/introspection.h"
#include "gtx/events.h"

#endif
