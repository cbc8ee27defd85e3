// Prints the ValidatingAdmissionPolicy and binding Gatekeeper generates from a ConstraintTemplate
// and a Constraint, with Gatekeeper's own code (pkg/drivers/k8scel/transform).
package main

import (
	"fmt"
	"os"

	"github.com/open-policy-agent/frameworks/constraint/pkg/core/templates"
	"github.com/open-policy-agent/gatekeeper/v3/pkg/drivers/k8scel/transform"
	"github.com/open-policy-agent/gatekeeper/v3/pkg/target"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	templatesv1 "github.com/open-policy-agent/frameworks/constraint/pkg/apis/templates/v1"
)

func must(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func main() {
	_ = target.Name
	raw, err := os.ReadFile(os.Args[1])
	must(err)
	v1 := &templatesv1.ConstraintTemplate{}
	must(yaml.Unmarshal(raw, v1))
	internal := &templates.ConstraintTemplate{}
	must(templatesv1.Convert_v1_ConstraintTemplate_To_templates_ConstraintTemplate(v1, internal, nil))
	policy, err := transform.TemplateToPolicyDefinition(internal)
	must(err)
	policy.APIVersion = "admissionregistration.k8s.io/v1beta1"
	policy.Kind = "ValidatingAdmissionPolicy"
	out, err := yaml.Marshal(policy)
	must(err)
	fmt.Print(string(out))

	raw, err = os.ReadFile(os.Args[2])
	must(err)
	constraint := &unstructured.Unstructured{}
	must(yaml.Unmarshal(raw, &constraint.Object))
	binding, err := transform.ConstraintToBinding(constraint, []string{"deny"})
	must(err)
	binding.APIVersion = "admissionregistration.k8s.io/v1beta1"
	binding.Kind = "ValidatingAdmissionPolicyBinding"
	out, err = yaml.Marshal(binding)
	must(err)
	fmt.Print("---\n" + string(out))
}
