// Package docs holds relaygate's documentation: the topic pages linked from
// the README, the annotated example configuration and the screenshots. It
// has no code; its test checks that every link between the pages resolves.
package docs
