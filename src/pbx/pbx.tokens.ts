/** The list of every PBX driver (one per vendor). */
export const PBX_DRIVERS = Symbol('PBX_DRIVERS');

/** Where the Asterisk driver finds the live AMI connections (the supervisor sets it). */
export const AMI_GATEWAY_REF = Symbol('AMI_GATEWAY_REF');
