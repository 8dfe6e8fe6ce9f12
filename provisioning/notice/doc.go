// Package notice owns what is sent to people and its proof: notices
// prepared per chunk, accepted emails recorded before the next is sent,
// fallbacks to letters, curators' copies, letter batches and their
// posting acknowledgements, returned letters, codes re-sent, bounce
// recipients and the relays' state. InformedProof is the SQL rule that an
// account's person was told, which activation relies on.
//
// It imports the provisioning root and audit. Rendering and sending are
// notify's; notice only records them.
package notice
