// Package notify renders and sends the notices that tell a person their
// account exists: French emails (plain text + HTML) over SMTP, and postal
// letters as PDF batches. Rendering is a pure function of a Notice.
//
// It never logs an email address, a postal address, a name or a code; it
// never puts a clickable login link in a notice (phishing): the person types
// the official address themselves.
package notify
