import { defineErrors } from '../common/errors/catalogue.js';
import { COMMON_ERRORS } from '../common/errors/common.errors.js';

/** Errors of agents and user mappings (and the shared codes). */
export const agentsError = defineErrors(
  {
    'extension-taken': { status: 409, description: 'Another agent of the company has this extension.' },
    'user-has-agent': { status: 409, description: 'The user already is an agent.' },
    'mapping-exists': { status: 409, description: 'The company already maps this identity at the provider.' },
  },
  COMMON_ERRORS,
);
