/* Custom errors of the energy-token program (InstructionError::Custom(n)); names mirrored in
 * programs/energy_token/client.py ENERGY_TOKEN_ERRORS. Built-in errors are used where one fits:
 * MissingRequiredSignature, InvalidAccountOwner, IncorrectProgramId, IncorrectAuthority (initialise
 * without the upgrade authority), ArithmeticOverflow (net generation or amount out of range). */
#ifndef ENERGY_TOKEN_ERROR_H
#define ENERGY_TOKEN_ERROR_H

enum {
  ENERGY_ERROR_UNKNOWN_INSTRUCTION = 1, /* first data byte is no known discriminator */
  ENERGY_ERROR_ACCOUNT_WRONG_SIZE = 2,  /* config or meter account data is not its documented length */
  ENERGY_ERROR_WRONG_ACCOUNT_TYPE = 3,  /* discriminator or version byte is not the expected one */
  ENERGY_ERROR_WRONG_MINT_AUTHORITY = 4, /* initialise: the mint's authority is not this program's PDA */
  ENERGY_ERROR_WRONG_DECIMALS = 5,      /* initialise: GRID has 9 decimals */
  ENERGY_ERROR_MINT_HAS_FREEZE_AUTHORITY = 6, /* initialise: no one may freeze GRID */
  ENERGY_ERROR_MINT_SUPPLY_NOT_ZERO = 7, /* initialise: the mint must be fresh */
  ENERGY_ERROR_READING_BAD_LENGTH = 8,  /* reading format errors, one per decoder code */
  ENERGY_ERROR_READING_BAD_PREFIX = 9,
  ENERGY_ERROR_READING_BAD_VERSION = 10,
  ENERGY_ERROR_READING_BAD_FLAGS = 11,
  ENERGY_ERROR_READING_BAD_RESERVED = 12,
  ENERGY_ERROR_READING_BAD_METER_ID = 13,
  ENERGY_ERROR_READING_BAD_POWER = 14,
  ENERGY_ERROR_READING_METER_ERROR = 15, /* the reading carries METER_ERROR: never credited */
  ENERGY_ERROR_WRONG_REGISTRY = 16,     /* meter account not owned by the configured registry program */
  ENERGY_ERROR_METER_MISMATCH = 17,     /* the reading's meter id is not the meter account's */
  ENERGY_ERROR_METER_NOT_ACTIVE = 18,   /* meter status is not Active */
  ENERGY_ERROR_READING_NOT_VERIFIED = 19, /* no Ed25519 check of these bytes by the meter's key */
  ENERGY_ERROR_REPLAYED_READING = 20,   /* sequence number not above the last accepted one */
  ENERGY_ERROR_STALE_TIMESTAMP = 21,    /* timestamp not above the last accepted one */
  ENERGY_ERROR_COUNTER_ROLLBACK = 22,   /* import or export counter below the last accepted value */
  ENERGY_ERROR_WRONG_MINT = 23,         /* mint account is not the configured GRID mint */
  ENERGY_ERROR_TOKEN_ACCOUNT_WRONG_MINT = 24, /* destination is not a GRID token account */
  ENERGY_ERROR_WRONG_TOKEN_OWNER = 25,  /* destination is not owned by the meter's owner */
  ENERGY_ERROR_WRONG_AUTHORITY = 26,    /* authority account is not this program's PDA */
  ENERGY_ERROR_NON_CANONICAL_BUMP = 27, /* a PDA (config, authority, or the registry meter handed in) at a
                                         * bump other than find_program_address's */
  ENERGY_ERROR_ZERO_AMOUNT = 28,        /* Consume of 0 GRID */
  ENERGY_ERROR_INSUFFICIENT_BALANCE = 29, /* Consume of more GRID than the account holds */
};

#endif
