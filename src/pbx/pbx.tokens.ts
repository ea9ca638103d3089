/** The list of every PBX driver (one per vendor). */
export const PBX_DRIVERS = Symbol('PBX_DRIVERS');
