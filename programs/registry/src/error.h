/* Custom errors of the registry program (InstructionError::Custom(n)); names mirrored in
 * programs/registry/client.py REGISTRY_ERRORS. Built-in errors (ERROR_*) are used where one fits:
 * MissingRequiredSignature, InvalidAccountOwner, InvalidSeeds, IncorrectProgramId, ArithmeticOverflow. */
#ifndef REGISTRY_ERROR_H
#define REGISTRY_ERROR_H

enum {
  REGISTRY_ERROR_UNKNOWN_INSTRUCTION = 1,  /* first data byte is no known discriminator */
  REGISTRY_ERROR_ACCOUNT_WRONG_SIZE = 2,   /* a registry account's data is not its documented length */
  REGISTRY_ERROR_WRONG_ACCOUNT_TYPE = 3,   /* discriminator or version byte is not the expected one */
  REGISTRY_ERROR_ALREADY_REGISTERED = 4,   /* user, meter or config account exists already */
  REGISTRY_ERROR_UNAUTHORISED = 5,         /* signer is not the config's authority */
  REGISTRY_ERROR_NOT_SETTLEMENT_AUTHORITY = 6, /* signer is not the config's settlement authority */
  REGISTRY_ERROR_INVALID_USER_KIND = 7,    /* kind is neither prosumer (1) nor consumer (2) */
  REGISTRY_ERROR_INVALID_METER_ID = 8,     /* meter id not 1-16 chars of [A-Za-z0-9._:-], NUL padded */
  REGISTRY_ERROR_INVALID_STATUS = 9,       /* status value out of range, or the same as the current one */
  REGISTRY_ERROR_METER_DECOMMISSIONED = 10, /* a decommissioned meter never changes status again */
  REGISTRY_ERROR_WRONG_USER = 11,          /* the user account belongs to another wallet */
  REGISTRY_ERROR_METER_NOT_ACTIVE = 12,    /* settlement on a meter whose status is not Active */
  REGISTRY_ERROR_STALE_READING = 13,       /* sequence or timestamp not newer than the last accepted */
  REGISTRY_ERROR_COUNTER_ROLLBACK = 14,    /* import or export counter below the last accepted */
  REGISTRY_ERROR_SETTLED_MARK_MISMATCH = 15, /* new settled mark is not max(previous mark, export - import) */
  REGISTRY_ERROR_SAME_METER_KEY = 16,     /* SetMeterKey with the key already registered */
  REGISTRY_ERROR_METER_HAS_HISTORY = 17,  /* ReassignMeter on a meter that has settled a reading */
  REGISTRY_ERROR_NON_CANONICAL_BUMP = 18, /* a PDA at a bump other than find_program_address's */
};

#endif
