package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/rs/zerolog"
	"github.com/spf13/cobra"

	"github.com/berthhq/berth/events"
	"github.com/berthhq/berth/journal"
)

// authDir is the directory of the node's NKey credentials.
func (o options) authDirectory() string {
	if o.authDir != "" {
		return o.authDir
	}
	return filepath.Join(o.dataDir, "auth")
}

// credentials returns the NKey credentials the agent runs with: with an
// external server, those of the auth directory if it holds any (else the
// agent signs in with --nats-user and --nats-password); with a listener on
// the embedded server, those of the auth directory, made on first use;
// with neither, none, since only in-process clients reach the server.
func credentials(o options, log zerolog.Logger) (*journal.Credentials, error) {
	dir := o.authDirectory()
	c, err := journal.LoadCredentials(dir)
	switch {
	case err == nil:
		return &c, nil
	case !errors.Is(err, journal.ErrNoCredentials):
		return nil, err
	case o.natsURL != "" || o.listen == "":
		return nil, nil
	}
	if c, err = journal.InitCredentials(dir, events.NewSubjects(o.prefix, o.node)); err != nil {
		return nil, err
	}
	log.Info().Str("dir", dir).Msg("NKey credentials made for the NATS listener: clients sign in with control.nk or operator.nk from there")
	return &c, nil
}

// addAuthCommand adds `berthd auth init`.
func addAuthCommand(root *cobra.Command, o *options) {
	initCmd := &cobra.Command{
		Use:   "init --data-dir DIR --node NAME [--auth-dir DIR] [--prefix P]",
		Short: "write NKey credentials for the agent, the control plane and a read-only operator",
		Long: `Writes a new NKey user for each identity on the bus into the auth directory (--auth-dir, default
DATA-DIR/auth): the seeds agent.nk, control.nk and operator.nk (mode 0600), users.json with their public
keys, which berthd loads, and nats-server.conf, an authorization block with the three users and their
permissions for an external NATS server.

  agent     the agent itself: every subject of its node
  control   the control plane: publishes the node's commands, reads replies, asks queries, reads events and logs
  operator  read-only: queries, events and logs; the server refuses its commands

The embedded server's listener (--listen) accepts only these users. Hand control.nk to the control plane and
operator.nk to operators (berth --nkey FILE, or BERTH_NKEY); they need not stay on the node. The control plane
and the operator receive replies only on inboxes under _INBOX.<their public key>: other NATS clients must use
that inbox prefix (nats --inbox-prefix). Existing credentials are never overwritten: remove the directory to
make new ones.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := applySettings(cmd.Flags(), os.LookupEnv); err != nil {
				return err
			}
			if o.dataDir == "" && o.authDir == "" {
				return errors.New("--data-dir or --auth-dir is required")
			}
			if err := events.ValidateNodeID(o.node); err != nil {
				return fmt.Errorf("--node: %w", err)
			}
			dir := o.authDirectory()
			c, err := journal.InitCredentials(dir, events.NewSubjects(o.prefix, o.node))
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "credentials for node %s in %s\n", o.node, dir)
			for _, r := range journal.Roles {
				fmt.Fprintf(out, "  %-8s %s  %s\n", r, c.Users[r], journal.SeedFile(dir, r))
			}
			fmt.Fprintf(out, "external NATS: include %s in the server's configuration\n", filepath.Join(dir, "nats-server.conf"))
			return nil
		},
	}
	initCmd.Flags().AddFlagSet(root.Flags())
	auth := &cobra.Command{Use: "auth", Short: "manage the node's credentials on the bus", Args: cobra.NoArgs}
	auth.AddCommand(initCmd)
	root.AddCommand(auth)
}
