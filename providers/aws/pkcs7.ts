/**
 * @module providers/aws/pkcs7
 *
 * The EC2 instance identity document is PKCS#7 SignedData, parsed by the one CMS pipeline,
 * providers/common/cms.ts (whose default shape-violation code is PKCS7_MALFORMED, as the AWS
 * provider has always answered). Re-exported under the module name the AWS tests and docs use.
 */
export { parseSignedData, type SignedData } from '../common/cms.js';
