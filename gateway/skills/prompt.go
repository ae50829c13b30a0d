package skills

import (
	"fmt"
	"strings"
)

// xmlText escapes the characters that would let a name or description close
// its element or open another (the prompt's list is XML-shaped, as
// OpenClaw's available_skills block is).
var xmlText = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;", "'", "&apos;")

// renderPrompt is the system prompt's skills section: the offered skills'
// names, descriptions and SKILL.md paths, within maxPromptSkills and
// maxPromptChars, and how to use them. Skills are sorted by name.
func renderPrompt(all []Skill) string {
	var visible []Skill
	for _, sk := range all {
		if sk.ModelVisible {
			visible = append(visible, sk)
		}
	}
	if len(visible) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString("\n## Skills\n" +
		"Skills are instructions for particular kinds of task, each in a SKILL.md file in the workspace. " +
		"Before you act on a task that matches a skill's description, read that skill's SKILL.md with the read tool " +
		"(the location is relative to the workspace) and follow it; read only the skill that matches, when it matches. " +
		"In a skill, {baseDir} means the directory of its SKILL.md.\n" +
		"<available_skills>\n")
	// Within the budget, every listed skill keeps its name and location
	// first (as OpenClaw's compact list does, so the model can still find
	// it); descriptions then go to as many as the rest of the budget allows.
	budget := maxPromptChars - b.Len() - len("</available_skills>\n") - 2*len("NNN skills are listed without their description, to keep this prompt short; the description is in their SKILL.md.\n")
	var full, short []string
	for _, sk := range visible {
		if len(short) >= maxPromptSkills {
			break
		}
		name, loc := xmlText.Replace(sk.Name), xmlText.Replace(sk.rel)
		c := fmt.Sprintf("  <skill><name>%s</name><location>%s</location></skill>\n", name, loc)
		if budget-len(c) < 0 {
			break
		}
		budget -= len(c)
		short = append(short, c)
		full = append(full, fmt.Sprintf("  <skill>\n    <name>%s</name>\n    <description>%s</description>\n    <location>%s</location>\n  </skill>\n",
			name, xmlText.Replace(sk.Description), loc))
	}
	compact := 0
	for i := range short {
		if extra := len(full[i]) - len(short[i]); extra <= budget {
			budget -= extra
			b.WriteString(full[i])
		} else {
			b.WriteString(short[i])
			compact++
		}
	}
	listed := len(short)
	b.WriteString("</available_skills>\n")
	if compact > 0 {
		fmt.Fprintf(&b, "%d skills are listed without their description, to keep this prompt short; the description is in their SKILL.md.\n", compact)
	}
	if n := len(visible) - listed; n > 0 {
		fmt.Fprintf(&b, "%d more skills are not listed, to keep this prompt short; list skills/ to find them.\n", n)
	}
	return b.String()
}
