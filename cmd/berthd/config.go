package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// precedence is how berthd settles each setting; it is part of --help.
const precedence = `Every flag can also be set by the environment variable BERTH_<FLAG> (--data-dir: BERTH_DATA_DIR) and by
the key of the flag's name in a JSON config file given with --config or BERTH_CONFIG, such as
{"data-dir": "C:\\ProgramData\\berth", "host-ops": 16, "stop-timeout": "30s"}. A setting comes from the first
of: the command line, the environment, the config file, the flag's default. A key the file does not know is an
error.`

// secrets are the settings that `berthd config print` masks.
var secrets = []string{"nats-password"}

// notSettings are flags that are not part of the configuration.
var notSettings = []string{"config", "help"}

// applySettings sets every setting of f that the command line did not give from
// the environment (looked up with env), else from the config file named by
// --config or BERTH_CONFIG, and leaves the default otherwise. An unknown key
// or a value a flag refuses is an error naming the key or variable.
func applySettings(f *pflag.FlagSet, env func(string) (string, bool)) error {
	file, err := readConfig(f, env)
	if err != nil {
		return err
	}
	var errs []error
	f.VisitAll(func(fl *pflag.Flag) {
		if fl.Changed || slices.Contains(notSettings, fl.Name) {
			return
		}
		name := envName(fl.Name)
		if v, ok := env(name); ok {
			if err := fl.Value.Set(v); err != nil {
				errs = append(errs, fmt.Errorf("%s=%q: %w", name, v, err))
			}
			return
		}
		if v, ok := file.values[fl.Name]; ok {
			if err := fl.Value.Set(v); err != nil {
				errs = append(errs, fmt.Errorf("config file %s: %s: %q: %w", file.path, fl.Name, v, err))
			}
		}
	})
	return errors.Join(errs...)
}

func envName(flag string) string {
	return "BERTH_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

type configFile struct {
	path   string
	values map[string]string // by flag name, as the flag's text
}

// readConfig reads the config file that --config (or else BERTH_CONFIG)
// names, if any: one JSON object whose keys are flag names and whose values
// are strings, numbers, booleans or, for settings that take several values, lists of strings.
func readConfig(f *pflag.FlagSet, env func(string) (string, bool)) (configFile, error) {
	var c configFile
	if fl := f.Lookup("config"); fl != nil && fl.Changed {
		c.path = fl.Value.String()
	} else if v, ok := env(envName("config")); ok {
		c.path = v
	}
	if c.path == "" {
		return c, nil
	}
	b, err := os.ReadFile(c.path)
	if err != nil {
		return c, fmt.Errorf("config file: %w", err)
	}
	var raw map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&raw); err != nil {
		return c, fmt.Errorf("config file %s: %w", c.path, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return c, fmt.Errorf("config file %s: more than one JSON value", c.path)
	}
	c.values = make(map[string]string, len(raw))
	var errs []error
	for _, k := range slices.Sorted(maps.Keys(raw)) {
		if f.Lookup(k) == nil || slices.Contains(notSettings, k) {
			errs = append(errs, fmt.Errorf("config file %s: unknown key %q", c.path, k))
			continue
		}
		var v any
		if err := json.Unmarshal(raw[k], &v); err != nil {
			return c, fmt.Errorf("config file %s: %s: %w", c.path, k, err)
		}
		switch v := v.(type) {
		case string:
			c.values[k] = v
		case float64:
			c.values[k] = strings.TrimSpace(string(raw[k]))
		case bool:
			c.values[k] = strconv.FormatBool(v)
		case []any:
			if !strings.HasSuffix(f.Lookup(k).Value.Type(), "Slice") {
				errs = append(errs, fmt.Errorf("config file %s: %s: want a string, number or boolean; a list is for a setting that takes several values", c.path, k))
				continue
			}
			var items []string
			for _, it := range v {
				str, ok := it.(string)
				if !ok || strings.Contains(str, ",") {
					errs = append(errs, fmt.Errorf("config file %s: %s: want a list of strings without commas", c.path, k))
					break
				}
				items = append(items, str)
			}
			c.values[k] = strings.Join(items, ",")
		default:
			errs = append(errs, fmt.Errorf("config file %s: %s: want a string, number or boolean", c.path, k))
		}
	}
	return c, errors.Join(errs...)
}

// effective returns the settings of f as a config file would hold them:
// numbers and booleans as JSON numbers and booleans, the rest as strings,
// secrets that are set masked.
func effective(f *pflag.FlagSet) map[string]any {
	out := map[string]any{}
	f.VisitAll(func(fl *pflag.Flag) {
		if slices.Contains(notSettings, fl.Name) {
			return
		}
		s := fl.Value.String()
		switch {
		case slices.Contains(secrets, fl.Name):
			if s != "" {
				s = "********"
			}
			out[fl.Name] = s
		case fl.Value.Type() == "stringSlice":
			out[fl.Name] = append([]string{}, fl.Value.(pflag.SliceValue).GetSlice()...)
		case fl.Value.Type() == "bool":
			out[fl.Name] = s == "true"
		case strings.HasPrefix(fl.Value.Type(), "int") || strings.HasPrefix(fl.Value.Type(), "uint"):
			out[fl.Name] = json.Number(s)
		default:
			out[fl.Name] = s
		}
	})
	return out
}

// addConfigCommand adds `berthd config print`, which takes root's flags.
func addConfigCommand(root *cobra.Command) {
	printCmd := &cobra.Command{
		Use:   "print [BERTHD FLAGS]",
		Short: "print the effective configuration as a JSON config file, secrets masked",
		Long: "Prints the settings berthd would run with, given the same flags, environment and config file, as a\n" +
			"JSON config file. Secrets (" + strings.Join(secrets, ", ") + ") are masked.\n\n" + precedence,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := applySettings(cmd.Flags(), os.LookupEnv); err != nil {
				return err
			}
			enc := json.NewEncoder(cmd.OutOrStdout())
			enc.SetIndent("", "  ")
			return enc.Encode(effective(cmd.Flags()))
		},
	}
	printCmd.Flags().AddFlagSet(root.Flags())
	config := &cobra.Command{Use: "config", Short: "show berthd's configuration", Args: cobra.NoArgs}
	config.AddCommand(printCmd)
	root.AddCommand(config)
}
