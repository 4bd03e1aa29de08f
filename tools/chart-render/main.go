// chart-render renders a Helm chart's templates the way `helm template` does, for machines
// where helm itself cannot be installed. It is built from Debian's golang-go and
// golang-github-masterminds-sprig-dev (Go text/template + Sprig is Helm's template engine) and
// exists so that the provisioner's C++ renderer can be checked against the chart (parity test).
//
// Usage:
//
//	chart-render --chart DIR [--release-name NAME] [--namespace NS] [--release-service NAME]
//	             [-f values.yaml]... [--set key=value]... [--notes] [--cluster objects.yaml]
//
// Supported Helm semantics (the chart uses nothing else):
//   - values: the chart's values.yaml, then each -f file, then each --set, deep-merged; a null
//     value deletes the key (Helm's coalescing).
//   - --set: dotted keys, '\' escapes the next character ("a\.b=c"), ',' separates assignments,
//     "true"/"false"/"null" (any case) and integers without leading zero are typed as Helm's
//     strvals does. List syntax ({a,b}, name[0]) is not supported and is an error.
//   - objects: .Values, .Chart (Name, Version, AppVersion, Description, Type, KubeVersion),
//     .Release (Name, Namespace, Service = "Helm", IsInstall = true, IsUpgrade, Revision = 1).
//     Not supported: .Files, .Capabilities, .Template, .Subcharts, subcharts, library charts.
//   - functions: Go text/template's builtins, plus exactly the allowlist in allowedFunctions
//     below (Sprig's own implementations, Helm's include/required/toYaml/toJson/lookup). lookup
//     answers an empty map, as Helm's does without a cluster (helm template, --dry-run): this
//     tool renders offline. With --cluster FILE (a YAML stream of objects) it renders as
//     `helm upgrade` against a cluster holding those objects: lookup by apiVersion, kind,
//     namespace and name finds them, and .Release is an upgrade (IsUpgrade, Revision 2). randAlphaNum is the one non-deterministic function allowed (the
//     chart's generated password); not supported: tpl, now, uuid*, genPrivateKey, ...
//   - output: every template whose name does not start with '_' (NOTES.txt only with --notes),
//     in file-name order, each as "---\n# Source: <chart>/templates/<file>\n<text>"; templates
//     rendering to whitespace only are dropped; "<no value>" is replaced by "" as Helm does.
//
// Exit status: 0 rendered, 1 a template failed (fail/required or an execution error), 2 bad usage.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"text/template"

	"github.com/Masterminds/sprig"
	"sigs.k8s.io/yaml"
)

// allowedFunctions is the documented subset of Sprig's function map the chart may use.
var allowedFunctions = []string{
	"b64dec", "b64enc", "default", "dict", "empty", "fail", "hasKey", "indent", "int", "kindIs",
	"list", "lower", "nindent", "quote", "randAlphaNum", "regexMatch", "replace", "squote",
	"toString", "trimSuffix", "trunc", "upper",
}

type chartMetadata struct {
	Name        string `json:"name"`
	Version     string `json:"version"`
	AppVersion  string `json:"appVersion"`
	Description string `json:"description"`
	Type        string `json:"type"`
	KubeVersion string `json:"kubeVersion"`
}

type release struct {
	Name      string
	Namespace string
	Service   string
	IsInstall bool
	IsUpgrade bool
	Revision  int
}

type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "Error:", err)
		var usage usageError
		if errors.As(err, &usage) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

func run(args []string) error {
	var chartDir, releaseName, namespace string
	releaseService := "Helm"
	var valueFiles, sets stringList
	notes := false
	for i := 0; i < len(args); i++ {
		arg := args[i]
		next := func() (string, error) {
			if i+1 >= len(args) {
				return "", usageError{arg + " needs an argument"}
			}
			i++
			return args[i], nil
		}
		var err error
		switch arg {
		case "--chart":
			chartDir, err = next()
		case "--release-name":
			releaseName, err = next()
		case "--namespace", "-n":
			namespace, err = next()
		case "--release-service":
			releaseService, err = next()
		case "-f", "--values":
			var v string
			v, err = next()
			valueFiles = append(valueFiles, v)
		case "--set":
			var v string
			v, err = next()
			sets = append(sets, v)
		case "--notes":
			notes = true
		case "--cluster":
			var file string
			if file, err = next(); err == nil {
				clusterObjects, err = readYAMLStream(file)
			}
		default:
			return usageError{"unknown argument " + strconv.Quote(arg)}
		}
		if err != nil {
			return err
		}
	}
	if chartDir == "" {
		return usageError{"--chart DIR is required"}
	}
	if namespace == "" {
		namespace = "default"
	}

	var meta chartMetadata
	if err := readYAML(filepath.Join(chartDir, "Chart.yaml"), &meta); err != nil {
		return err
	}
	if releaseName == "" {
		releaseName = "release-name"
	}
	values := map[string]interface{}{}
	if err := readYAML(filepath.Join(chartDir, "values.yaml"), &values); err != nil {
		return err
	}
	for _, file := range valueFiles {
		override := map[string]interface{}{}
		if err := readYAML(file, &override); err != nil {
			return err
		}
		values = coalesce(values, override)
	}
	for _, set := range sets {
		override, err := parseSet(set)
		if err != nil {
			return usageError{err.Error()}
		}
		values = coalesce(values, override)
	}

	rel := release{Name: releaseName, Namespace: namespace, Service: releaseService,
		IsInstall: true, Revision: 1}
	if clusterObjects != nil {
		rel.IsInstall, rel.IsUpgrade, rel.Revision = false, true, 2
	}
	data := map[string]interface{}{"Values": values, "Chart": meta, "Release": rel}
	out, err := render(chartDir, meta.Name, data, notes)
	if err != nil {
		return err
	}
	_, err = os.Stdout.WriteString(out)
	return err
}

// clusterObjects are what lookup finds (--cluster); nil: no cluster, lookup finds nothing.
var clusterObjects []map[string]interface{}

// readYAMLStream reads "---"-separated YAML documents; empty ones are skipped.
func readYAMLStream(file string) ([]map[string]interface{}, error) {
	text, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	objects := []map[string]interface{}{}
	for _, document := range strings.Split("\n"+string(text), "\n---") {
		object := map[string]interface{}{}
		if err := yaml.Unmarshal([]byte(document), &object); err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		if len(object) > 0 {
			objects = append(objects, object)
		}
	}
	return objects, nil
}

func readYAML(file string, into interface{}) error {
	text, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	if err := yaml.Unmarshal(text, into); err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	return nil
}

// coalesce deep-merges override into base (maps merge, anything else replaces; null deletes).
func coalesce(base, override map[string]interface{}) map[string]interface{} {
	for key, value := range override {
		if value == nil {
			delete(base, key)
			continue
		}
		overrideMap, overrideIsMap := value.(map[string]interface{})
		baseMap, baseIsMap := base[key].(map[string]interface{})
		if overrideIsMap && baseIsMap {
			base[key] = coalesce(baseMap, overrideMap)
		} else {
			base[key] = value
		}
	}
	return base
}

// parseSet turns "a.b=c,d=e" into {a: {b: c}, d: e} with Helm's strvals typing.
func parseSet(text string) (map[string]interface{}, error) {
	// Checked before splitting on ',' because a list ("a={x,y}") contains commas itself.
	if strings.Contains(text, "={") {
		return nil, fmt.Errorf("--set %q: list values are not supported", text)
	}
	result := map[string]interface{}{}
	for _, assignment := range splitUnescaped(text, ',') {
		keyText, valueText, found := cutUnescaped(assignment, '=')
		if !found {
			return nil, fmt.Errorf("--set %q: expected key=value", assignment)
		}
		path := splitUnescaped(keyText, '.')
		for _, segment := range path {
			if segment == "" {
				return nil, fmt.Errorf("--set %q: empty key segment in %q", assignment, keyText)
			}
			if strings.ContainsAny(segment, "[]") {
				return nil, fmt.Errorf("--set %q: list indexes are not supported", assignment)
			}
		}
		value := unescape(valueText)
		node := result
		for i, segment := range path {
			key := unescape(segment)
			if i == len(path)-1 {
				node[key] = typedValue(value)
				break
			}
			child, ok := node[key].(map[string]interface{})
			if !ok {
				child = map[string]interface{}{}
				node[key] = child
			}
			node = child
		}
	}
	return result, nil
}

func typedValue(value string) interface{} {
	switch {
	case strings.EqualFold(value, "true"):
		return true
	case strings.EqualFold(value, "false"):
		return false
	case strings.EqualFold(value, "null"):
		return nil
	case value == "0":
		return int64(0)
	}
	if value != "" && value[0] != '0' {
		if number, err := strconv.ParseInt(value, 10, 64); err == nil {
			return number
		}
	}
	return value
}

// splitUnescaped splits on sep where it is not preceded by a backslash; escapes are kept.
func splitUnescaped(text string, sep byte) []string {
	var parts []string
	start := 0
	for i := 0; i < len(text); i++ {
		if text[i] == '\\' {
			i++
			continue
		}
		if text[i] == sep {
			parts = append(parts, text[start:i])
			start = i + 1
		}
	}
	return append(parts, text[start:])
}

func cutUnescaped(text string, sep byte) (string, string, bool) {
	for i := 0; i < len(text); i++ {
		if text[i] == '\\' {
			i++
			continue
		}
		if text[i] == sep {
			return text[:i], text[i+1:], true
		}
	}
	return text, "", false
}

func unescape(text string) string {
	var out strings.Builder
	for i := 0; i < len(text); i++ {
		if text[i] == '\\' && i+1 < len(text) {
			i++
		}
		out.WriteByte(text[i])
	}
	return out.String()
}

func functionMap(root *template.Template) template.FuncMap {
	sprigFunctions := sprig.TxtFuncMap()
	functions := template.FuncMap{}
	for _, name := range allowedFunctions {
		function, ok := sprigFunctions[name]
		if !ok {
			panic("sprig has no function " + name)
		}
		functions[name] = function
	}
	functions["include"] = func(name string, data interface{}) (string, error) {
		var out strings.Builder
		if err := root.ExecuteTemplate(&out, name, data); err != nil {
			return "", err
		}
		return out.String(), nil
	}
	functions["required"] = func(message string, value interface{}) (interface{}, error) {
		if value == nil {
			return nil, errors.New(message)
		}
		if text, ok := value.(string); ok && text == "" {
			return nil, errors.New(message)
		}
		return value, nil
	}
	// Helm's toYaml: sigs.k8s.io/yaml (keys sorted), trailing newline trimmed, "" on error.
	functions["toYaml"] = func(value interface{}) string {
		out, err := yaml.Marshal(value)
		if err != nil {
			return ""
		}
		return strings.TrimSuffix(string(out), "\n")
	}
	// Helm's lookup of one object: the --cluster object with that identity, else (and always
	// without --cluster) an empty map, as Helm answers when there is no such object or no cluster.
	functions["lookup"] = func(apiVersion, kind, namespace, name string) (map[string]interface{}, error) {
		for _, object := range clusterObjects {
			metadata, _ := object["metadata"].(map[string]interface{})
			if object["apiVersion"] == apiVersion && object["kind"] == kind &&
				metadata["name"] == name && (metadata["namespace"] == namespace ||
				(namespace == "" && metadata["namespace"] == nil)) {
				return object, nil
			}
		}
		return map[string]interface{}{}, nil
	}
	functions["toJson"] = func(value interface{}) string {
		out, err := json.Marshal(value)
		if err != nil {
			return ""
		}
		return string(out)
	}
	return functions
}

func render(chartDir, chartName string, data interface{}, notes bool) (string, error) {
	root := template.New("gotpl").Option("missingkey=zero")
	root.Funcs(functionMap(root))
	templatesDir := filepath.Join(chartDir, "templates")
	var names []string
	err := filepath.WalkDir(templatesDir, func(file string, entry fs.DirEntry, err error) error {
		if err != nil || entry.IsDir() {
			return err
		}
		relative, err := filepath.Rel(templatesDir, file)
		if err != nil {
			return err
		}
		text, err := os.ReadFile(file)
		if err != nil {
			return err
		}
		name := path.Join(chartName, "templates", filepath.ToSlash(relative))
		if _, err := root.New(name).Parse(string(text)); err != nil {
			return err
		}
		names = append(names, name)
		return nil
	})
	if err != nil {
		return "", err
	}
	sort.Strings(names)
	var out bytes.Buffer
	for _, name := range names {
		base := path.Base(name)
		isNotes := base == "NOTES.txt"
		if strings.HasPrefix(base, "_") || isNotes != notes {
			continue
		}
		var text strings.Builder
		if err := root.ExecuteTemplate(&text, name, data); err != nil {
			return "", fmt.Errorf("execution error at (%s): %w", name, err)
		}
		rendered := strings.ReplaceAll(text.String(), "<no value>", "")
		if strings.TrimSpace(rendered) == "" {
			continue
		}
		if isNotes {
			out.WriteString(rendered)
			continue
		}
		fmt.Fprintf(&out, "---\n# Source: %s\n%s\n", name, strings.TrimRight(rendered, "\n"))
	}
	return out.String(), nil
}
